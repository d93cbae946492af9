// HTTPS test client for tests/tests/record_go.rs (standard library only).
//
//	client BASE_URL h1|h2 LOG
//
// h1: GET of 200 KB and POST of 50 KB over HTTP/1.1 (one connection).
// h2: the same over HTTP/2, then 20 concurrent GETs on that connection.
// stack: one GET written and read by hand through buffers on a fresh
// goroutine's stack, which grows (and moves) during the first Write, as
// it runs the handshake.
// Every exchange is logged to LOG as one JSON line (what the client wrote
// and read), the ground truth a recording of the server is compared with.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

type exchange struct {
	Proto        string `json:"proto"`
	Method       string `json:"method"`
	Path         string `json:"path"`
	RequestBody  []byte `json:"request_body"`
	Status       int    `json:"status"`
	ResponseBody []byte `json:"response_body"`
}

func body(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*31 + seed
	}
	return b
}

// stackExchange reads the response into an array on the stack of a fresh
// goroutine (it does not escape: tls.Conn copies into it). Its first Read
// runs the handshake, which outgrows the goroutine's small first stack: the
// runtime moves the stack, array included, while Read is in flight. The
// request is written from another goroutine once the handshake is under way.
func stackExchange(address, path string) {
	tcp, err := net.Dial("tcp", address)
	if err != nil {
		panic(err)
	}
	// Not tls.Dial, which would run the handshake here.
	conn := tls.Client(tcp, &tls.Config{InsecureSkipVerify: true})
	defer conn.Close()
	done := make(chan bool)
	go readAll(conn, done)
	// Only so that Read starts the handshake: were the Write first, the
	// exchange would be the same, just not on a moving stack.
	time.Sleep(100 * time.Millisecond)
	request := "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(request)); err != nil {
		panic(err)
	}
	<-done
}

func readAll(conn *tls.Conn, done chan bool) {
	var response [512]byte
	for {
		if _, err := conn.Read(response[:]); err != nil {
			done <- true
			return
		}
	}
}

func main() {
	base, mode := os.Args[1], os.Args[2]
	if mode == "stack" {
		stackExchange(base[len("https://"):], "/get?n=3000&seed=9")
		return
	}
	logFile, err := os.Create(os.Args[3])
	if err != nil {
		panic(err)
	}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: mode == "h2",
	}
	if mode == "h1" {
		// A non-nil empty map turns HTTP/2 off.
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	client := &http.Client{Transport: transport}
	var mu sync.Mutex
	do := func(method, path string, request []byte) {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(request))
		if err != nil {
			panic(err)
		}
		if request == nil {
			req.Body = nil
		}
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		response, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
		line, _ := json.Marshal(exchange{resp.Proto, method, path, request, resp.StatusCode, response})
		mu.Lock()
		logFile.Write(append(line, '\n'))
		mu.Unlock()
	}
	do("GET", "/get?n=200000&seed=7", nil)
	do("POST", "/post", body(50000, 3))
	if mode == "h2" {
		var wg sync.WaitGroup
		for i := 1; i <= 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				do("GET", fmt.Sprintf("/get?n=%d&seed=%d", 3000+i*111, i), nil)
			}(i)
		}
		wg.Wait()
	}
	transport.CloseIdleConnections()
	logFile.Close()
}
