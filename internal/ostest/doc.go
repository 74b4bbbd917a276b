// Package ostest holds the end-to-end test of Strata's OS side: a disk baked with osimage.Bake,
// booted in QEMU (software emulation) through Strata's initrd, updated, committed and rolled back.
// It has no code of its own; the test is in ostest_test.go.
package ostest
