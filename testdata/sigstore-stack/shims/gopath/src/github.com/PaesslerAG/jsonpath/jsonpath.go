// Package jsonpath is a test-bed stand-in for PaesslerAG/jsonpath (see README.md): only `$.a.b`.
package jsonpath

import (
	"fmt"
	"strings"
)

// Get evaluates a `$.a.b` path against decoded JSON.
func Get(path string, value any) (any, error) {
	if !strings.HasPrefix(path, "$") {
		return nil, fmt.Errorf("jsonpath %q: must start with $", path)
	}
	cur := value
	for _, field := range strings.Split(strings.TrimPrefix(path, "$"), ".")[1:] {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("jsonpath %q: %q is not in an object", path, field)
		}
		if cur, ok = obj[field]; !ok {
			return nil, fmt.Errorf("jsonpath %q: unknown key %q", path, field)
		}
	}
	return cur, nil
}
