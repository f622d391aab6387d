package classify

import (
	"errors"
	"mime"
	"strings"
)

// errNoMediaType is parseMediaType's error for an empty value.
var errNoMediaType = errors.New("classify: no media type")

// parseMediaType is mime.ParseMediaType, for the values most parts
// have read without it (its map, and for an empty value its error, are
// an allocation each): "" is an error, and a value of one token, or
// two about a '/', of ASCII letters, digits, '.', '+' and '-' is
// itself in lower case, without parameters (a nil map, which reads as
// the empty one mime.ParseMediaType returns). TestParseMediaType and
// FuzzParseMediaType hold the two to the same answers.
func parseMediaType(v string) (string, map[string]string, error) {
	if v == "" {
		return "", nil, errNoMediaType
	}
	slash := -1
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '/' && slash < 0:
			slash = i
		case wordByte[c] != 0 || c == '.' || c == '+' || c == '-':
		default:
			return mime.ParseMediaType(v)
		}
	}
	if slash == 0 || slash == len(v)-1 {
		return mime.ParseMediaType(v)
	}
	return strings.ToLower(v), nil, nil
}
