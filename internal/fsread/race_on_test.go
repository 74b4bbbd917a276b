//go:build race

package fsread

const raceEnabled = true
