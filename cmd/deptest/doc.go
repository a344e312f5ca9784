// Package deptest holds no code of its own: its test enforces the import
// rules of DESIGN.md ("Packages and who may import whom") by reading
// `go list -deps` for every package of the module.
package deptest
