package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// Every writer against every reader around the 16 MiB packet boundary.
func TestPacketBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, MaxPayload - 1, MaxPayload, MaxPayload + 1000, 2*MaxPayload + 3} {
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		a, b := net.Pipe()
		w, r := NewPacketIO(a, 0), NewPacketIO(b, 0)
		errc := make(chan error, 1)
		go func() { errc <- w.WritePacketFlush(payload) }()
		got, err := r.ReadPacket(nil, 1<<30)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%d: write: %v", n, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: payload changed", n)
		}
		wantSeq := uint8(n/MaxPayload + 1)
		if w.Seq != wantSeq || r.Seq != wantSeq {
			t.Fatalf("%d bytes: sequence %d/%d, want %d", n, w.Seq, r.Seq, wantSeq)
		}
		a.Close()
		b.Close()
	}
}

func TestReadPacketTooLarge(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	w, r := NewPacketIO(a, 0), NewPacketIO(b, 0)
	go func() { _ = w.WritePacketFlush(make([]byte, 5000)); _ = w.WritePacketFlush([]byte("next")) }()
	if _, err := r.ReadPacket(nil, 4096); err != ErrPacketTooLarge {
		t.Fatalf("want ErrPacketTooLarge, got %v", err)
	}
	// The oversized packet was drained: the stream stays in sync.
	got, err := r.ReadPacket(nil, 4096)
	if err != nil || string(got) != "next" {
		t.Fatalf("after oversized packet: %q %v", got, err)
	}
}

// relayCase plays a backend response through Relay and checks that the
// client received exactly the bytes the backend sent.
func relayCase(t *testing.T, kind ResponseKind, packets [][]byte) Outcome {
	t.Helper()
	var sent bytes.Buffer
	for i, p := range packets {
		n := len(p)
		sent.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(i + 1)})
		sent.Write(p)
	}
	beSrv, beProxy := net.Pipe()
	clProxy, clApp := net.Pipe()
	go func() { _, _ = beSrv.Write(sent.Bytes()) }()
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.CopyN(&got, clApp, int64(sent.Len())) }()
	// Only the "cursor" case is a COM_STMT_EXECUTE that asked for a cursor.
	r := Relay{Client: NewPacketIO(clProxy, 0), Backend: NewPacketIO(beProxy, 0), Cursor: t.Name() == "TestRelayResultSets/cursor"}
	out, err := r.Response(kind)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got.Bytes(), sent.Bytes()) {
		t.Fatalf("client got %d bytes, backend sent %d; streams differ", got.Len(), sent.Len())
	}
	if r.Backend.Buffered() != 0 {
		t.Fatal("relay read past the end of the response")
	}
	return out
}

func eof(status uint16) []byte { return []byte{0xfe, 0, 0, byte(status), byte(status >> 8)} }

func TestRelayResultSets(t *testing.T) {
	col := []byte("\x03def\x00\x01t\x01t\x01a\x01a\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00")
	bigRow := append([]byte{0xfe}, make([]byte, 8)...) // starts like EOF but is a row: length >= 9
	huge := make([]byte, MaxPayload)                   // a row split over two packets
	huge[0] = 0xfc
	cases := map[string]struct {
		kind    ResponseKind
		packets [][]byte
		status  uint16
		errCode uint16
	}{
		"ok":    {RespResult, [][]byte{{0, 1, 0, 2, 0, 0, 0}}, 2, 0},
		"error": {RespResult, [][]byte{ErrorPayload(NewError(1146, "no table"))}, 0, 1146},
		"rows":  {RespResult, [][]byte{{1}, col, eof(2), {1, 'x'}, bigRow, huge, {0}, eof(2)}, 2, 0},
		"two results": {RespResult, [][]byte{{1}, col, eof(0x0a), {1, 'x'}, eof(0x0a),
			{0, 2, 0, 2, 0, 0, 0}}, 2, 0},
		"error mid rows": {RespResult, [][]byte{{1}, col, eof(2), {1, 'x'}, ErrorPayload(NewError(1317, "interrupted"))}, 0, 1317},
		"cursor":         {RespResult, [][]byte{{1}, col, eof(2 | 0x40)}, 0x42, 0},
		// CALL of a procedure that opened a cursor of its own: the text
		// protocol results carry CURSOR_EXISTS, and their rows follow.
		"procedure cursor": {RespResult, [][]byte{{1}, col, eof(0x4a), {1, 'x'}, eof(0x4a),
			{0, 0, 0, 2, 0, 0, 0}}, 2, 0},
		"field list": {RespFieldList, [][]byte{col, col, eof(2)}, 2, 0},
		"prepare":    {RespPrepare, [][]byte{{0, 7, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}, col, col, eof(2), col, eof(2)}, 0, 0},
		"statistics": {RespSingle, [][]byte{[]byte("Uptime: 5")}, 0, 0},
		"fetch":      {RespRows, [][]byte{{0, 0, 1}, {0, 0, 2}, eof(0x82)}, 0x82, 0},
		// MariaDB's progress reports (ERR 0xFFFF) before the response and,
		// for REPAIR or CHECK TABLE, between its metadata and its rows.
		"progress": {RespResult, [][]byte{progress(), {1}, col, eof(2), progress(), {1, 'x'}, progress(), eof(2)}, 2, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			out := relayCase(t, c.kind, c.packets)
			if out.Status != c.status || out.ErrCode != c.errCode {
				t.Fatalf("outcome %+v, want status %#x err %d", out, c.status, c.errCode)
			}
			if name == "prepare" && out.StmtID != 7 {
				t.Fatalf("statement id %d, want 7", out.StmtID)
			}
			if w, ok := counts[name]; ok && (out.Rows != w[0] || out.AffectedRows != w[1]) {
				t.Fatalf("rows %d affected %d, want %d and %d", out.Rows, out.AffectedRows, w[0], w[1])
			}
		})
	}
}

// counts are the rows and affected rows of some relay cases ("rows": the
// packet after a MaxPayload one is its continuation, not a row).
var counts = map[string][2]uint64{"ok": {0, 1}, "rows": {3, 0}, "two results": {1, 2}, "fetch": {2, 0}, "progress": {1, 0}}

// progress is a MariaDB progress report: stage 1 of 2, 50%, "repair".
func progress() []byte {
	return append([]byte{0xff, 0xff, 0xff, 0x01, 1, 2, 0x20, 0xa1, 0x07, 0x00, 6}, "repair"...)
}

func FuzzParseHandshakeResponse(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Add(append(append([]byte{0x8d, 0xa6, 0xff, 0x19, 0, 0, 0, 1, 45}, make([]byte, 23)...), "root\x00\x14aaaaaaaaaaaaaaaaaaaa"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseHandshakeResponse(b)
		_, _ = ParseChangeUser(append([]byte{0x11}, b...), 0xffffffff)
	})
}

// recordingConn remembers what the server wrote.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// login runs Accept against go-mysql's client over a pipe and reports
// whether the server asked for full authentication.
func login(t *testing.T, a *Authenticator, password string) (fullAuth bool, err error) {
	t.Helper()
	srv, cli := net.Pipe()
	rec := &recordingConn{Conn: srv}
	done := make(chan error, 1)
	go func() {
		p := NewPacketIO(rec, 0)
		_, err := Accept(p, ServerConfig{Version: "5.7.37", ConnID: 7, Auth: a, RemoteHost: "127.0.0.1"})
		if err == nil {
			err = p.WriteOK(mysql.SERVER_STATUS_AUTOCOMMIT)
		}
		done <- err
	}()
	dial := func(context.Context, string, string) (net.Conn, error) { return cli, nil }
	c, cerr := client.ConnectWithDialer(context.Background(), "tcp", "pipe", "app", password, "", dial)
	if c != nil {
		c.Close()
	}
	serr := <-done
	srv.Close()
	if cerr == nil && serr != nil {
		t.Fatalf("client ok but server failed: %v", serr)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return bytes.Contains(rec.out.Bytes(), []byte{2, 0, 0, 2, 1, 4}) || bytes.Contains(rec.out.Bytes(), []byte{2, 0, 0, 4, 1, 4}), cerr
}

func TestCachingSHA2FullThenFast(t *testing.T) {
	a := &Authenticator{Plugin: PluginCachingSHA2, Lookup: func(u string) (string, bool) { return "s3cret", u == "app" }}
	full, err := login(t, a, "s3cret")
	if err != nil || !full {
		t.Fatalf("first login: full=%v err=%v", full, err)
	}
	full, err = login(t, a, "s3cret")
	if err != nil || full {
		t.Fatalf("second login must take the fast path: full=%v err=%v", full, err)
	}
	if _, err := login(t, a, "wrong"); err == nil {
		t.Fatal("wrong password accepted on the fast path")
	}
}

func TestNativeLogin(t *testing.T) {
	a := &Authenticator{Plugin: PluginNative, Lookup: func(u string) (string, bool) { return "pw", u == "app" }}
	if _, err := login(t, a, "pw"); err != nil {
		t.Fatal(err)
	}
	_, err := login(t, a, "bad")
	if me, ok := err.(*mysql.MyError); !ok || me.Code != mysql.ER_ACCESS_DENIED_ERROR {
		// go-mysql wraps errors; check the text instead
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("1045")) {
			t.Fatalf("want 1045, got %v", err)
		}
	}
}

// TestGreetingAndResponseRoundTrip: what the proxy encodes as a server
// (greeting) and as a client (handshake response, for auth passthrough)
// decodes to the same fields, MariaDB's extended capabilities included.
func TestGreetingAndResponseRoundTrip(t *testing.T) {
	salt, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	g := &Greeting{Version: "10.11.19-MariaDB", ConnID: 1 << 30, Salt: salt,
		Capabilities:    ServerCapabilities &^ mysql.CLIENT_LONG_PASSWORD,
		ExtCapabilities: MariaDBExtendedMetadata, Collation: 45, Status: mysql.SERVER_STATUS_AUTOCOMMIT, Plugin: PluginNative}
	back, err := ParseGreeting(g.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*back) != fmt.Sprint(*g) {
		t.Errorf("greeting:\n got %+v\nwant %+v", *back, *g)
	}
	h := &ClientHello{Capabilities: g.Capabilities | mysql.CLIENT_CONNECT_WITH_DB, ExtCapabilities: MariaDBExtendedMetadata,
		MaxPacket: 1 << 24, Collation: 33, User: "app", AuthResponse: []byte("0123456789abcdefghij"), DB: "shop",
		Plugin: PluginNative, Attributes: map[string]string{"_client_name": "libmariadb", "program_name": "mysql"}}
	hb, err := ParseHandshakeResponse(HandshakeResponse(h, h.Capabilities))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*hb) != fmt.Sprint(*h) {
		t.Errorf("handshake response:\n got %+v\nwant %+v", *hb, *h)
	}
}

// TestUntracked: OKs from a connection with session tracking, as a client
// without it gets them from the server.
func TestUntracked(t *testing.T) {
	cases := []struct{ in, want string }{
		// MariaDB: SET NAMES, info empty, state changes.
		{"\x00\x00\x00\x02\x40\x00\x00\x00\x09\x01\x07\x06gotest", "\x00\x00\x00\x02\x00\x00\x00"},
		// An info kept, the state dropped.
		{"\x00\x01\x00\x02\x40\x00\x00\x02hi\x09\x01\x07\x06gotest", "\x00\x01\x00\x02\x00\x00\x00\x02hi"},
		// MySQL: an empty info, no state.
		{"\x00\x00\x00\x02\x00\x00\x00\x00", "\x00\x00\x00\x02\x00\x00\x00"},
		// Nothing to undo.
		{"\x00\x00\x00\x02\x00\x00\x00", "\x00\x00\x00\x02\x00\x00\x00"},
		{"\x00\x01\x00\x02\x00\x00\x00\x02hi", "\x00\x01\x00\x02\x00\x00\x00\x02hi"},
		{"\xfe\x00\x00\x02\x40", "\xfe\x00\x00\x02\x40"},
		{"\x00\xfc", "\x00\xfc"},
	}
	for _, c := range cases {
		p := []byte(c.in)
		if got := string(p[:untracked(p)]); got != c.want {
			t.Errorf("untracked(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRelayAdd: a client greeted with MariaDB's extended metadata and
// metadata caching, served by a connection without them (a node of
// another version), gets column counts with the metadata-follows byte and
// column definitions with an empty extended metadata block.
func TestRelayAdd(t *testing.T) {
	col := "\x03def\x00\x01t\x01t\x01a\x01a\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00"
	extCol := "\x03def\x00\x01t\x01t\x01a\x01a\x00\x0c\x21\x00\x00\x01\x00\x00\xfd\x00\x00\x00\x00\x00"
	in := packets(1, []byte{1}, []byte(col), eof(2), []byte{1, 'x'}, eof(2))
	want := packets(1, []byte{1, 1}, []byte(extCol), eof(2), []byte{1, 'x'}, eof(2))
	be, cl := newMemConn(in), newMemConn(nil)
	r := Relay{Client: NewPacketIO(cl, 0), Backend: NewPacketIO(be, 0), ClientLocalFiles: true, CacheMetadata: true,
		Add: MariaDBExtendedMetadata | MariaDBCacheMetadata}
	out, err := r.Response(RespResult)
	if err != nil || out.Rows != 1 {
		t.Fatalf("relay: %+v, %v", out, err)
	}
	if got := cl.out.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("client got %q\nwant %q", got, want)
	}
}
