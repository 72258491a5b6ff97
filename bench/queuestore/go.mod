module github.com/lookout-agent/lookout/bench/queuestore

go 1.26.8

require (
	github.com/lookout-agent/lookout v0.0.0
	github.com/tidwall/wal v1.2.1
	golang.org/x/sys v0.48.0
)

require (
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/tinylru v1.2.1 // indirect
)

replace github.com/lookout-agent/lookout => ../..
