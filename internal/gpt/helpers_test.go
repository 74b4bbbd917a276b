package gpt

import (
	"fmt"
	"strconv"
)

func strconvItoa(i int) string { return strconv.Itoa(i) }
func hex16(a uint64) string    { return fmt.Sprintf("%016X", a) }
