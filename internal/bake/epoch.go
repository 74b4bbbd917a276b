package bake

import (
	"fmt"
	"strconv"
)

// EpochFromEnv is the timestamp of every file in a baked image:
// $SOURCE_DATE_EPOCH (reproducible-builds.org), else 0.
func EpochFromEnv(getenv func(string) string) (int64, error) {
	v := getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative number of seconds", v)
	}
	return n, nil
}
