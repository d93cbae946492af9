// HTTPS test server for tests/tests/record_go.rs (standard library only).
//
//	server CERT KEY LOG
//
// Prints its port, then serves HTTP/1.1 and HTTP/2 on 127.0.0.1 until
// SIGINT/SIGTERM. Every exchange is logged to LOG as one JSON line, written
// when the handler is done: what the server read and what it wrote, the
// ground truth a recording of the client is compared with. A closed
// connection adds a line {"closed":"ADDR"}: by then the server has written
// all it will on it, so a recording of the server is complete once it is
// stopped.
package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

type exchange struct {
	Proto        string `json:"proto"`
	Method       string `json:"method"`
	Path         string `json:"path"`
	RequestBody  []byte `json:"request_body"`
	Status       int    `json:"status"`
	ResponseBody []byte `json:"response_body"`
}

// body is deterministic, so both sides can be checked byte for byte.
func body(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*31 + seed
	}
	return b
}

func main() {
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		panic(err)
	}
	logFile, err := os.Create(os.Args[3])
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	logExchange := func(e exchange) {
		line, _ := json.Marshal(e)
		mu.Lock()
		defer mu.Unlock()
		logFile.Write(append(line, '\n'))
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		request, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var response []byte
		switch r.URL.Path {
		case "/post":
			response = []byte(fmt.Sprintf("got %d bytes\n", len(request)))
		default:
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
			response = body(n, byte(seed))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(response)))
		w.WriteHeader(200)
		w.Write(response)
		logExchange(exchange{r.Proto, r.Method, r.URL.RequestURI(), request, 200, response})
	})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	server := &http.Server{
		Handler: handler,
		ConnState: func(c net.Conn, state http.ConnState) {
			if state == http.StateClosed {
				line, _ := json.Marshal(map[string]string{"closed": c.RemoteAddr().String()})
				mu.Lock()
				defer mu.Unlock()
				logFile.Write(append(line, '\n'))
			}
		},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		server.Close()
	}()
	if err := server.ServeTLS(listener, "", ""); err != http.ErrServerClosed {
		panic(err)
	}
	logFile.Close()
}
