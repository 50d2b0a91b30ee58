module github.com/uptables/uptables

go 1.26.8
