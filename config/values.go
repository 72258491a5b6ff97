package config

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// setText sets a field from its text form, as in the environment or a flag. The error
// says what is allowed, never repeats the value.
func setText(v reflect.Value, text string) error {
	switch p := v.Addr().Interface().(type) {
	case *string:
		*p = text
	case *bool:
		b, err := parseBool(text)
		if err != nil {
			return err
		}
		*p = b
	case **bool:
		b, err := parseBool(text)
		if err != nil {
			return err
		}
		*p = &b
	case *int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return errors.New("want a whole number")
		}
		*p = n
	case *Duration:
		d, err := time.ParseDuration(text)
		if err != nil {
			return errors.New("want a number with a unit, like 200ms, 10s or 1m")
		}
		*p = Duration(d)
	case *ByteSize:
		n, err := parseSize(text)
		if err != nil {
			return err
		}
		*p = n
	case *[]string:
		*p = nil
		for _, h := range strings.Split(text, ",") {
			if h = strings.TrimSpace(h); h != "" {
				*p = append(*p, h)
			}
		}
	default:
		panic(fmt.Sprintf("config: no text form for %s", v.Type()))
	}
	return nil
}

func parseBool(text string) (bool, error) {
	b, err := strconv.ParseBool(text)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// showValue is the text form of a field for `lookout check`: as it would be written in
// the environment, with the password of a URL hidden.
func showValue(v reflect.Value) string {
	switch p := v.Addr().Interface().(type) {
	case *string:
		return redact(*p)
	case **bool:
		if *p == nil {
			return ""
		}
		return strconv.FormatBool(**p)
	case *Duration:
		return time.Duration(*p).String()
	case *ByteSize:
		return showSize(*p)
	case *[]string:
		return strings.Join(*p, ",")
	}
	return fmt.Sprint(v.Interface())
}

func showSize(b ByteSize) string {
	for _, u := range []struct {
		n    ByteSize
		unit string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatInt(int64(b/u.n), 10) + u.unit
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// errValue is the value as a validation error quotes it.
func errValue(v reflect.Value) string {
	switch p := v.Addr().Interface().(type) {
	case *Duration:
		return time.Duration(*p).String()
	case *ByteSize:
		return strconv.FormatInt(int64(*p), 10)
	}
	return fmt.Sprint(v.Interface())
}

// redact hides the password of a URL (user:password@host): `lookout check` never shows
// a secret.
func redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}
