package store

// SizeReporter is an optional ability of a Store: the bytes its files
// take on disk, by part, for `sealmail status` and metrics. The part
// names are the backend's (badger: "lsm" for its sorted tables, "vlog"
// for its value log); they carry no backend type.
type SizeReporter interface {
	Sizes() map[string]int64
}
