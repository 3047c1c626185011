module github.com/gochirp/chirp

go 1.26.0

require (
	github.com/panjf2000/gnet/v2 v2.9.7
	github.com/valyala/bytebufferpool v1.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/panjf2000/ants/v2 v2.11.3 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/sync v0.11.0 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)

// gnet v2.9.7 with one patch (no runtime.Gosched before a blocking
// epoll_wait): see third_party/gnet/CHIRP.md. Applies to builds of this
// module (tests, cmd/chirp); an application using chirp as a library
// copies third_party/gnet and adds the same replace to its own go.mod to
// get it.
replace github.com/panjf2000/gnet/v2 v2.9.7 => ./third_party/gnet
