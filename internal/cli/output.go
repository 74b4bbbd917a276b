package cli

import (
	"encoding/json"
	"fmt"
	"io"
)

// parseJSONMode reads systemd's --json= value: pretty, short or off.
func parseJSONMode(v string) (string, error) {
	switch v {
	case "", "off":
		return "", nil
	case "pretty", "short":
		return v, nil
	}
	return "", fmt.Errorf("unknown --json= mode %q (want pretty, short or off)", v)
}

func writeJSON(w io.Writer, mode string, v any) error {
	var b []byte
	var err error
	if mode == "pretty" {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
