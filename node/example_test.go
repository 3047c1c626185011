package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gochirp/chirp/node"
)

// local is the configuration of the examples: loopback, a free port.
func local(cfg node.Config) node.Config {
	cfg.Port = node.AnyPort
	cfg.BindV4 = netip.MustParseAddr("127.0.0.1")
	cfg.DisableV6 = true
	cfg.DisableEncryption = true // plaintext on loopback anyway
	return cfg
}

func addrOf(n *node.Node) string { return fmt.Sprintf("127.0.0.1:%d", n.Port()) }

// An echo server sends every message back where it came from; the sender
// waits for the echo. (python-chirp: async echo / pool echo.)
func Example_echo() {
	ctx := context.Background()
	server, _ := node.Start(local(node.Config{
		Handler: node.HandlerFunc(func(m *node.Message) {
			_ = m.Reply(ctx, m.Data) // back where it came from, same identity
		}),
	}))
	defer server.Close(ctx)

	echoes := make(chan string, 1)
	client, _ := node.Start(local(node.Config{
		Handler: node.HandlerFunc(func(m *node.Message) { echoes <- string(m.Data) }),
	}))
	defer client.Close(ctx)

	m, _ := node.NewMessage(addrOf(server), []byte("hello"))
	if err := client.Send(ctx, m); err != nil { // synchronous: returns once the server released it
		fmt.Println(err)
	}
	fmt.Println(<-echoes)
	// Output: hello
}

// Request sends a message and waits for the answer with the same identity.
// (python-chirp: request.)
func ExampleNode_Request() {
	ctx := context.Background()
	server, _ := node.Start(local(node.Config{
		Handler: node.HandlerFunc(func(m *node.Message) {
			_ = m.Reply(ctx, bytes.ToUpper(m.Data))
		}),
	}))
	defer server.Close(ctx)
	client, _ := node.Start(local(node.Config{}))
	defer client.Close(ctx)

	m, _ := node.NewMessage(addrOf(server), []byte("shout"))
	answer, err := client.Request(ctx, m)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(answer.Data), answer.Identity == m.Identity)
	// Output: SHOUT true
}

// A worker node processes jobs and replies; an asynchronous producer keeps
// many jobs in flight without a goroutine each. Rule of thumb: workers
// asynchronous, producers synchronous, routers synchronous if their
// producer is.
func Example_worker() {
	ctx := context.Background()
	worker, _ := node.Start(local(node.Config{
		Asynchronous: true,
		Handler: node.HandlerFunc(func(m *node.Message) {
			_ = m.Reply(ctx, fmt.Appendf(nil, "%s done", m.Data))
		}),
	}))
	defer worker.Close(ctx)

	results := make(chan string, 3)
	producer, _ := node.Start(local(node.Config{
		Handler: node.HandlerFunc(func(m *node.Message) { results <- string(m.Data) }),
	}))
	defer producer.Close(ctx)

	var jobs []*node.Pending
	for _, job := range []string{"a", "b", "c"} {
		m, _ := node.NewMessage(addrOf(worker), []byte(job))
		jobs = append(jobs, producer.Go(m))
	}
	for _, p := range jobs {
		if err := p.Wait(ctx); err != nil {
			fmt.Println(err)
		}
	}
	got := map[string]bool{}
	for range jobs {
		got[<-results] = true
	}
	fmt.Println(got["a done"], got["b done"], got["c done"])
	// Output: true true true
}

// A queue consumer pulls messages with Recv, for pipeline code. With
// automatic release each message is a copy and its slot is free at once.
// (python-chirp: queue.)
func ExampleNode_Recv() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	consumer, _ := node.Start(local(node.Config{Receive: node.ReceiveQueue}))
	defer consumer.Close(ctx)
	producer, _ := node.Start(local(node.Config{}))
	defer producer.Close(ctx)

	go func() {
		for _, s := range []string{"one", "two", "three"} {
			m, _ := node.NewMessage(addrOf(consumer), []byte(s))
			_ = producer.Send(ctx, m)
		}
	}()
	for i := 0; i < 3; i++ {
		m, err := consumer.Recv(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(m.Data))
	}
	// Output:
	// one
	// two
	// three
}

// A node's identity is a node.Identity (no codec import needed); it prints
// as 32 hex digits with %v, %s and %x.
func ExampleIdentity() {
	ctx := context.Background()
	id := node.Identity{0xc0, 0x82, 0xa2, 0x11}
	n, err := node.Start(local(node.Config{Identity: id}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close(ctx)
	fmt.Printf("%x\n%v\n", n.Identity(), n.Identity() == id)
	// Output:
	// c082a211000000000000000000000000
	// true
}

// A message's deadline is its context's: a send still queued when the
// context ends is withdrawn, and the message may be sent again at once.
func ExampleNode_Send_deadline() {
	ctx := context.Background()
	// A consumer that never takes its messages: the first send is written
	// and waits for its release; the second stays queued behind it.
	consumer, _ := node.Start(local(node.Config{Receive: node.ReceiveQueue, ManualRelease: true}))
	defer consumer.Close(ctx)
	producer, _ := node.Start(local(node.Config{}))

	first, _ := node.NewMessage(addrOf(consumer), []byte("first"))
	producer.Go(first)
	second, _ := node.NewMessage(addrOf(consumer), []byte("second"))
	deadline, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := producer.Send(deadline, second)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))

	// Close fails what is still pending (the first send) and says so.
	soon, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	fmt.Println(producer.Close(soon))
	// Output:
	// true
	// chirp: shutdown: failed 1 pending send: context deadline exceeded
}

// At Config.MaxPending pending sends, Go and SendAsync refuse more at once
// with ErrQueueFull (Send would wait for room).
func ExampleErrQueueFull() {
	ctx := context.Background()
	consumer, _ := node.Start(local(node.Config{Receive: node.ReceiveQueue, ManualRelease: true}))
	defer consumer.Close(ctx)
	producer, _ := node.Start(local(node.Config{MaxPending: 2}))
	soon, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	defer producer.Close(soon)

	for i := 0; i < 3; i++ {
		m, _ := node.NewMessage(addrOf(consumer), []byte("job"))
		if err := producer.SendAsync(m, nil); err != nil {
			fmt.Println(i, err)
		}
	}
	// Output: 2 chirp: send queue full
}

// A router passes work from producers to workers and the workers' replies
// back: Request works end to end through it, with the identity kept. The
// router holds each message until its forward finished, so a synchronous
// producer's send completes only when a worker released the message
// (throttling propagates), and fails when the forward failed (timeouts
// propagate). See the package guide, Routing.
func Example_router() {
	ctx := context.Background()
	worker, _ := node.Start(local(node.Config{
		Handler: node.HandlerFunc(func(m *node.Message) {
			_ = m.Reply(ctx, bytes.ToUpper(m.Data))
		}),
	}))
	defer worker.Close(ctx)

	workerAddr, _ := node.ResolveAddr(ctx, addrOf(worker))
	rt, _ := node.NewRouter(workerAddr)
	router, _ := node.Start(local(node.Config{Receive: node.ReceiveInline, Handler: rt}))
	defer router.Close(ctx)

	producer, _ := node.Start(local(node.Config{}))
	defer producer.Close(ctx)
	m, _ := node.NewMessage(addrOf(router), []byte("via the router"))
	answer, err := producer.Request(ctx, m)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(answer.Data), answer.Identity == m.Identity)
	st := rt.Stats()
	fmt.Println(st.Forwarded, st.Replies, st.Failed, st.Routes)
	// Output:
	// VIA THE ROUTER true
	// 1 1 0 0
}
