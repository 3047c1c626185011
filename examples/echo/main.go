// Command echo is the README's example: a node that answers every message
// with its data in upper case, and a client that asks it.
package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gochirp/chirp/node"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The handler replies through the message: no variable for the node,
	// which a message could reach before Start returned.
	// No credentials: plaintext to 127.0.0.1 and ::1 only (see TLS below).
	server, err := node.Start(node.Config{
		Port: node.AnyPort,
		Handler: node.HandlerFunc(func(m *node.Message) {
			_ = m.Reply(ctx, bytes.ToUpper(m.Data)) // same identity: the answer
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close(ctx)

	client, err := node.Start(node.Config{Port: node.AnyPort})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	m, err := node.NewMessage(fmt.Sprintf("127.0.0.1:%d", server.Port()), []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	answer, err := client.Request(ctx, m) // waits until ctx's deadline
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", answer.Data) // HELLO
}
