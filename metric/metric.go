// Package metric holds the point type that flows from Lookout's features to its outputs.
package metric

import (
	"sort"
	"time"
)

// Tag is one key=value tag of a point.
type Tag struct {
	Key, Value string
}

// Field is one field of a point. Value is an int64, uint64, float64, string or bool.
type Field struct {
	Key   string
	Value any
}

// Point is one line of line protocol, before encoding.
type Point struct {
	Name   string
	Tags   []Tag
	Fields []Field
	Time   time.Time
}

// New builds a point with its tags sorted by key, as line protocol wants them.
// Tags with an empty value are left out: line protocol cannot carry them.
func New(name string, tags map[string]string, fields []Field, t time.Time) Point {
	p := Point{Name: name, Fields: fields, Time: t}
	p.Tags = make([]Tag, 0, len(tags))
	for k, v := range tags {
		if k == "" || v == "" {
			continue
		}
		p.Tags = append(p.Tags, Tag{k, v})
	}
	sort.Slice(p.Tags, func(i, j int) bool { return p.Tags[i].Key < p.Tags[j].Key })
	return p
}

// Tag returns the value of the tag named key, or "".
func (p Point) Tag(key string) string {
	for _, t := range p.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return ""
}

// Field returns the value of the field named key, or nil.
func (p Point) Field(key string) any {
	for _, f := range p.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// Sink accepts points. It must not block: implementations buffer (bounded) and count drops.
type Sink interface {
	Add(p ...Point)
}

// TagMap returns the tags as a map (for Telegraf's Accumulator).
func (p Point) TagMap() map[string]string {
	m := make(map[string]string, len(p.Tags))
	for _, t := range p.Tags {
		m[t.Key] = t.Value
	}
	return m
}

// FieldMap returns the fields as a map (for Telegraf's Accumulator).
func (p Point) FieldMap() map[string]any {
	m := make(map[string]any, len(p.Fields))
	for _, f := range p.Fields {
		m[f.Key] = f.Value
	}
	return m
}

// WithTag returns a copy of tags with k=v added (tags is not changed; nil is empty).
func WithTag(tags map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(tags)+1)
	for key, val := range tags {
		out[key] = val
	}
	out[k] = v
	return out
}
