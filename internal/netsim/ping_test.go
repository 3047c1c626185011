package netsim

import (
	"testing"
	"time"
)

func TestNetSimPing(t *testing.T) {
	n := New(t)
	a, b := n.NewHost(), n.NewHost()
	srv := b.Command("python3", "-c", `
import socket
s=socket.socket(); s.bind(("198.18.0.2",5000)); s.listen(1)
while True:
    c,_=s.accept()
    while True:
        d=c.recv(65536)
        if not d: break
        c.sendall(d)
`)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, d := range []time.Duration{0, 10 * time.Millisecond} {
		n.Netem(a, Impair{Delay: d})
		out, err := a.Command("python3", "-c", `
import socket,time
c=socket.create_connection(("198.18.0.2",5000),timeout=3)
t=time.time()
for i in range(20):
    c.sendall(b"x"*100); c.recv(100)
print("rtt ms", (time.time()-t)/20*1000)

`).CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatal(err)
		}
	}
}
