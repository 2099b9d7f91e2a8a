package inject

import (
	"encoding/json"

	"gomodules.xyz/jsonpatch/v2"
)

// MarshalPatch serialises operations for the admission response. Values that are already JSON (the
// rendered pieces, marshalled once per rendering) are copied as they are: encoding/json would
// re-validate and re-compact them on every request, which was half the cost of an injection.
func MarshalPatch(ops []jsonpatch.Operation) ([]byte, error) {
	size := 2
	for _, op := range ops {
		size += len(op.Path) + 40
		if raw, ok := op.Value.(json.RawMessage); ok {
			size += len(raw)
		}
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, op := range ops {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"op":`...)
		out = appendString(out, op.Operation)
		out = append(out, `,"path":`...)
		out = appendString(out, op.Path)
		if op.Operation != "remove" {
			out = append(out, `,"value":`...)
			switch v := op.Value.(type) {
			case json.RawMessage:
				out = append(out, v...)
			default:
				b, err := json.Marshal(v)
				if err != nil {
					return nil, err
				}
				out = append(out, b...)
			}
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// appendString appends s as a JSON string. Paths, operations and most values are plain ASCII that
// needs no escaping, and quoting them directly saves a reflective Marshal and an allocation each; any
// other string gets encoding/json's escaping (HTML characters included, as before).
func appendString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}
