package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Validate checks every setting by its rule in the table; the error lists each bad one,
// naming the setting (and its variable), the value and what is allowed.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, env, value, allowed string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", label(key, env), value, allowed))
	}
	check := func(s Setting, in reflect.Value, key string, o *Output) {
		if s.index == nil || s.Rule.check == nil || (s.when != nil && !s.when(c)) {
			return
		}
		v := in.FieldByIndex(s.index)
		for _, allowed := range s.Rule.check(v, c, o) {
			bad(key, s.Env, errValue(v), allowed)
		}
	}
	root := reflect.ValueOf(c).Elem()
	for _, s := range settings {
		if !s.PerOutput() {
			check(s, root, s.Key, nil)
		}
	}
	names := map[string]bool{}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		p := fmt.Sprintf("outputs[%d]", i)
		if names[o.Name] {
			bad(p+".name", "", o.Name, "output names must be unique")
		}
		names[o.Name] = true
		for _, s := range settings {
			if s.PerOutput() {
				check(s, reflect.ValueOf(o).Elem(), p+strings.TrimPrefix(s.Key, "outputs[]"), o)
			}
		}
		if o.Type == OutputInfluxV2 && (o.Org == "" || o.Bucket == "") {
			bad(p+".org/bucket", "LOOKOUT_INFLUXDB_ORG, LOOKOUT_INFLUXDB_BUCKET", o.Org+"/"+o.Bucket, "InfluxDB v2 needs both org and bucket")
		}
	}
	return errors.Join(errs...)
}
