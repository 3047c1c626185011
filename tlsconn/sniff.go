package tlsconn

// Telling TLS from plaintext by a peer's first bytes: two nodes whose
// encryption settings differ cannot agree on one, but each can say why
// the connection failed.

// TLS record types a peer's first record can have.
const (
	recordAlert     = 0x15
	recordHandshake = 0x16
)

// IsClientHello reports whether b, the first bytes a peer sent where a
// plaintext protocol was expected, are a TLS ClientHello: the peer wants
// TLS. more reports that b is a prefix of one and too short to tell; ten
// bytes always tell. The check reads the record type and version, and the
// handshake type and client version inside, so that a chirp handshake
// (port, then identity) passes for one only from port 5635, and then for
// about one random identity in 10^9.
func IsClientHello(b []byte) (yes, more bool) {
	want := [10]struct{ lo, hi byte }{
		{recordHandshake, recordHandshake}, {3, 3}, {0, 4}, // record type and version
		{0, 255}, {0, 255}, // record length
		{1, 1},                     // handshake type client_hello
		{0, 0}, {0, 255}, {0, 255}, // handshake length (< 64 KiB)
		{3, 3}, // client_version major
	}
	for i, w := range want {
		if i == len(b) {
			return false, true
		}
		if b[i] < w.lo || b[i] > w.hi {
			return false, false
		}
	}
	return true, false
}
