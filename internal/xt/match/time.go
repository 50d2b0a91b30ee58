package match

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptables/uptables/internal/xt"
)

// time (xt_time): matches the packet's arrival time (uptables: the packet's
// timestamp, p.TimeNS) against a daytime window, weekdays, days of the
// month and an absolute date range. Dates are always UTC; daytime, weekday
// and monthday use UTC unless --kerneltz (then the kernel's timezone, which
// for uptables is the zone the engine is given; none = UTC).
// --contiguous makes a window that wraps midnight one interval.

const (
	timeDateStart = iota
	timeDateStop
	timeTimeStart
	timeTimeStop
	timeMonthdays
	timeWeekdays
	timeKernelTZ
	timeContiguous
	timeLocalTZ // alias of kerneltz (deprecated), shares its id in iptables
	timeUTC
)

var timeOpts = optTable{
	{name: "datestart", id: timeDateStart, arg: xt.RequiredArg},
	{name: "datestop", id: timeDateStop, arg: xt.RequiredArg},
	{name: "timestart", id: timeTimeStart, arg: xt.RequiredArg},
	{name: "timestop", id: timeTimeStop, arg: xt.RequiredArg},
	{name: "weekdays", id: timeWeekdays, arg: xt.RequiredArg, flags: optInvert},
	{name: "monthdays", id: timeMonthdays, arg: xt.RequiredArg, flags: optInvert},
	{name: "localtz", id: timeLocalTZ, arg: xt.NoArg, excl: 1 << timeUTC},
	{name: "utc", id: timeUTC, arg: xt.NoArg, excl: 1 << timeLocalTZ},
	{name: "kerneltz", id: timeKernelTZ, arg: xt.NoArg, excl: 1 << timeUTC},
	{name: "contiguous", id: timeContiguous, arg: xt.NoArg},
}

// Limits and defaults of struct xt_time_info.
const (
	timeMaxDaytime   = 24*60*60 - 1 // 23:59:59
	timeAllMonthdays = 0xfffffffe   // bits 1..31
	timeAllWeekdays  = 0xfe         // bits 1..7 (Mon=1 ... Sun=7)
	timeDateStopDef  = 1<<31 - 1    // INT_MAX: 2038-01-19T03:14:07
)

var weekdayNames = [...]string{"", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// Time is a configured time match.
type Time struct {
	seen uint32
	// DateStart, DateStop: seconds since the epoch, UTC, inclusive.
	DateStart, DateStop uint32
	// DaytimeStart, DaytimeStop: seconds since midnight.
	DaytimeStart, DaytimeStop uint32
	Monthdays                 uint32 // bit d = day d of the month
	Weekdays                  uint8  // bit d = Mon(1) .. Sun(7)
	KernelTZ                  bool
	Contiguous                bool
}

var (
	_ xt.Match         = (*Time)(nil)
	_ xt.Checker       = (*Time)(nil)
	_ xt.PacketMatcher = (*Time)(nil)
)

func newTimeSpec() *xt.MatchSpec {
	return &xt.MatchSpec{Name: "time", Options: timeOpts.options(), New: func() xt.Match {
		return &Time{DateStop: timeDateStopDef, DaytimeStop: timeMaxDaytime,
			Monthdays: timeAllMonthdays, Weekdays: timeAllWeekdays}
	}}
}

// Parse implements xt.Match.
func (m *Time) Parse(_ *xt.ParseContext, opt string, invert bool, arg string, _ []string) error {
	e, err := timeOpts.begin("time", &m.seen, opt, invert)
	if err != nil {
		return err
	}
	switch e.id {
	case timeDateStart, timeDateStop:
		t, ok := parseTimeDate(arg)
		if !ok {
			return xt.Errorf("Invalid date \"%s\" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]", arg)
		}
		if e.id == timeDateStart {
			m.DateStart = t
		} else {
			m.DateStop = t
		}
	case timeTimeStart, timeTimeStop:
		t, err := parseDaytime(arg)
		if err != nil {
			return err
		}
		if e.id == timeTimeStart {
			m.DaytimeStart = t
		} else {
			m.DaytimeStop = t
		}
	case timeWeekdays:
		w, err := parseWeekdays(arg)
		if err != nil {
			return err
		}
		if invert {
			w ^= timeAllWeekdays
		}
		m.Weekdays = w
	case timeMonthdays:
		d, err := parseMonthdays(arg)
		if err != nil {
			return err
		}
		if invert {
			d ^= timeAllMonthdays
		}
		m.Monthdays = d
	case timeKernelTZ, timeLocalTZ:
		m.KernelTZ = true
	case timeContiguous:
		m.Contiguous = true
	}
	return nil
}

// parseTimeDate reads YYYY[-MM[-DD[Thh[:mm[:ss]]]]] (each part decimal, an
// empty part is 0) with year 1970-2038, month <= 12, day <= 31, hour <= 23,
// minute and second <= 59 (a part that is announced by its separator but
// empty is 0, one that is left out is its minimum), and normalises like timegm (month 0 is December
// of the year before, day 0 the last day of the month before).
func parseTimeDate(s string) (uint32, bool) {
	f := [6]uint64{0, 1, 1, 0, 0, 0} // parts not given: January, day 1, 00:00:00
	limits := [6]uint64{2038, 12, 31, 23, 59, 59}
	seps := [6]byte{'-', '-', 'T', ':', ':', 0}
	rest := s
	for i := 0; i < 6; i++ {
		v, r := strtoul10(rest)
		if v > limits[i] {
			return 0, false
		}
		f[i] = v
		rest = r
		if rest == "" {
			break
		}
		if rest[0] != seps[i] || seps[i] == 0 {
			return 0, false
		}
		rest = rest[1:]
	}
	if f[0] < 1970 {
		return 0, false
	}
	t := time.Date(int(f[0]), time.Month(f[1]), int(f[2]), int(f[3]), int(f[4]), int(f[5]), 0, time.UTC)
	u := t.Unix()
	if u < 0 || u > 0xffffffff {
		return 0, false
	}
	return uint32(u), true
}

// strtoul10 is strtoul(s, &end, 10) saturating at a large value: leading
// blanks and '+' are skipped, "-N" wraps (and so fails every limit), no
// digits gives 0 with s unchanged.
func strtoul10(s string) (uint64, string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if v < 1<<60 {
			v = v*10 + uint64(s[i]-'0')
		}
		i++
	}
	if i == start {
		return 0, s
	}
	if neg && v != 0 {
		v = 1<<64 - 1
	}
	return v, s[i:]
}

// parseDaytime reads hh:mm[:ss]; the error names the part that was wrong,
// as iptables does.
func parseDaytime(s string) (uint32, error) {
	bad := func(part string) error {
		return xt.Errorf("invalid time \"%s\" specified, should be hh:mm[:ss] format and within the boundaries", part)
	}
	h, rest := strtoul10(s)
	if h > 23 || rest == "" || rest[0] != ':' {
		return 0, bad(s)
	}
	mpart := rest[1:]
	mi, rest := strtoul10(mpart)
	if mi > 59 {
		return 0, bad(mpart)
	}
	if rest == "" {
		return uint32(h*3600 + mi*60), nil
	}
	if rest[0] != ':' {
		return 0, bad(mpart)
	}
	spart := rest[1:]
	sec, rest := strtoul10(spart)
	if sec > 59 || rest != "" {
		return 0, bad(spart)
	}
	return uint32(h*3600 + mi*60 + sec), nil
}

// parseWeekdays reads a comma list of day numbers (1-7) or names. Only the
// first three characters of an item count, a name may be abbreviated
// ("Mo"), and numbers above 7 set bits that do not exist (iptables shifts
// 1 by the number in 32 bits and keeps 8), so they select nothing.
func parseWeekdays(s string) (uint8, error) {
	var mask uint8
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], ',')
		tok := s[i:]
		if j >= 0 {
			tok = s[i : i+j]
			i += j + 1
		} else {
			i = len(s)
		}
		if len(tok) > 3 {
			tok = tok[:3]
		}
		if v, rest, ok := xt.ParseUintPrefix(tok); (ok && rest == "") || tok == "" {
			if v == 0 {
				return 0, xt.Errorf("No, the week does NOT begin with Sunday.")
			}
			mask |= uint8(uint32(1) << (v & 31))
			continue
		}
		found := false
		for d := 1; d <= 7; d++ {
			if strings.HasPrefix(weekdayNames[d], tok) {
				mask |= 1 << d
				found = true
				break
			}
		}
		if !found {
			return 0, xt.Errorf("%s is not a valid day specifier", tok)
		}
	}
	return mask, nil
}

// parseMonthdays reads a comma list of days 0-31 (empty items are skipped,
// only the first two characters of an item count; day 0 sets an unused bit).
func parseMonthdays(s string) (uint32, error) {
	var mask uint32
	for _, tok := range strings.Split(s, ",") {
		if tok == "" {
			continue
		}
		if len(tok) > 2 {
			tok = tok[:2]
		}
		v, ok := xt.ParseUint(tok, 0, 31)
		if !ok || tok[0] == ' ' || tok[0] == '+' {
			return 0, xt.Errorf("%s is not a valid day for --monthdays", tok)
		}
		mask |= 1 << v
	}
	return mask, nil
}

// Final implements xt.Match.
func (m *Time) Final(*xt.ParseContext) error {
	if m.Contiguous && m.DaytimeStart < m.DaytimeStop {
		return xt.Errorf("time: --contiguous only makes sense when stoptime is smaller than starttime")
	}
	return timeOpts.fcheck("time", m.seen)
}

func daytimeString(t uint32) string {
	return fmt.Sprintf("%02d:%02d:%02d", t/3600, t/60%60, t%60)
}

func (m *Time) weekdayList() string {
	var s []string
	for d := 1; d <= 7; d++ {
		if m.Weekdays&(1<<d) != 0 {
			s = append(s, weekdayNames[d])
		}
	}
	return strings.Join(s, ",")
}

// Save implements xt.Match.
func (m *Time) Save(b *strings.Builder) {
	if m.DaytimeStart != 0 || m.DaytimeStop != timeMaxDaytime {
		b.WriteString(" --timestart " + daytimeString(m.DaytimeStart))
		b.WriteString(" --timestop " + daytimeString(m.DaytimeStop))
	}
	if m.Monthdays != timeAllMonthdays {
		b.WriteString(" --monthdays ")
		first := true
		for d := 1; d <= 31; d++ {
			if m.Monthdays&(1<<d) != 0 {
				if !first {
					b.WriteByte(',')
				}
				fmt.Fprintf(b, "%d", d)
				first = false
			}
		}
	}
	if m.Weekdays != timeAllWeekdays {
		b.WriteString(" --weekdays " + m.weekdayList())
	}
	if m.DateStart != 0 {
		b.WriteString(" --datestart " + time.Unix(int64(m.DateStart), 0).UTC().Format("2006-01-02T15:04:05"))
	}
	if m.DateStop != 0 {
		b.WriteString(" --datestop " + time.Unix(int64(m.DateStop), 0).UTC().Format("2006-01-02T15:04:05"))
	}
	if m.KernelTZ {
		b.WriteString(" --kerneltz")
	}
	if m.Contiguous {
		b.WriteString(" --contiguous")
	}
}

// monthdaySuffix reproduces iptables' ordinal suffixes, which look only at
// the last digit: 11st, 12nd, 13rd.
func monthdaySuffix(d int) string {
	switch d % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// List implements xt.Match.
func (m *Time) List(b *strings.Builder, _ bool) {
	b.WriteString(" TIME")
	if m.DaytimeStart != 0 || m.DaytimeStop != timeMaxDaytime {
		b.WriteString(" from " + daytimeString(m.DaytimeStart) + " to " + daytimeString(m.DaytimeStop))
	}
	if m.Weekdays != timeAllWeekdays {
		b.WriteString(" on " + m.weekdayList())
	}
	if m.Monthdays != timeAllMonthdays {
		b.WriteString(" on ")
		first := true
		for d := 1; d <= 31; d++ {
			if m.Monthdays&(1<<d) != 0 {
				if !first {
					b.WriteByte(',')
				}
				fmt.Fprintf(b, "%d%s", d, monthdaySuffix(d))
				first = false
			}
		}
	}
	if m.DateStart != 0 {
		b.WriteString(" starting from " + time.Unix(int64(m.DateStart), 0).UTC().Format("2006-01-02 15:04:05"))
	}
	if m.DateStop != timeDateStopDef {
		b.WriteString(" until date")
		if m.DateStop != 0 {
			b.WriteString(" " + time.Unix(int64(m.DateStop), 0).UTC().Format("2006-01-02 15:04:05"))
		}
	}
	if !m.KernelTZ {
		b.WriteString(" UTC")
	}
	if m.Contiguous {
		b.WriteString(" contiguous")
	}
}

// Check implements xt.Checker (time_mt_check).
func (m *Time) Check(*xt.CheckContext) error {
	if m.DaytimeStart > timeMaxDaytime || m.DaytimeStop > timeMaxDaytime {
		return xt.EINVAL("xt_time: invalid argument - start or stop time greater than 23:59:59")
	}
	if m.Contiguous && m.DaytimeStart < m.DaytimeStop {
		return xt.EINVAL("xt_time: contiguous flag only makes sense when start time is after stop time")
	}
	return nil
}

// Matches implements xt.PacketMatcher on p.TimeNS, in UTC (--kerneltz is
// treated as UTC too: uptables has no kernel timezone; the engine may
// offer one later through MatchAt).
func (m *Time) Matches(c *xt.Ctx) bool {
	return m.MatchAt(c.P.TimeNS, 0)
}

// MatchAt tests the time ns (since the epoch) shifted by the UTC offset
// tzOffset seconds when --kerneltz is given. Follows time_mt: the offset is
// applied first (so the dates are compared in local time too), then the
// dates, the daytime window (a window with start > stop wraps midnight; with
// --contiguous the part after midnight belongs to the previous day), then
// weekday and monthday.
func (m *Time) MatchAt(ns int64, tzOffset int64) bool {
	sec := ns / 1e9
	if ns < 0 && ns%1e9 != 0 {
		sec--
	}
	if m.KernelTZ {
		sec += tzOffset
	}
	if sec < int64(m.DateStart) || sec > int64(m.DateStop) {
		return false
	}
	days := sec / 86400
	daytime := uint32(sec - days*86400)
	if sec < 0 {
		days--
		daytime = uint32(sec - days*86400)
	}
	if m.DaytimeStart < m.DaytimeStop {
		if daytime < m.DaytimeStart || daytime > m.DaytimeStop {
			return false
		}
	} else {
		if daytime < m.DaytimeStart && daytime > m.DaytimeStop {
			return false
		}
		// After midnight in a wrapping window: with --contiguous the day
		// checks apply to the day the window started.
		if m.Contiguous && daytime <= m.DaytimeStop {
			days--
		}
	}
	if m.Weekdays != timeAllWeekdays {
		// 1970-01-01 was a Thursday (4); Mon=1 .. Sun=7.
		wd := (days%7+7+3)%7 + 1
		if m.Weekdays&(1<<wd) == 0 {
			return false
		}
	}
	if m.Monthdays != timeAllMonthdays {
		_, _, d := civilFromDays(days)
		if m.Monthdays&(1<<d) == 0 {
			return false
		}
	}
	return true
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian
// date without allocating (Howard Hinnant's algorithm, public domain).
func civilFromDays(z int64) (y int64, mo, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		mo = int(mp + 3)
	} else {
		mo = int(mp - 9)
	}
	if mo <= 2 {
		y++
	}
	return y, mo, d
}
