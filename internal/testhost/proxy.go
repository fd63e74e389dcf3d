package testhost

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a userspace TCP proxy in front of a target address. It adds a
// fixed delay to every chunk in each direction (so a round trip costs twice
// the delay), and can cut or black-hole the connections it carries.
type Proxy struct {
	ln        net.Listener
	target    string
	delay     time.Duration
	blackhole atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target with
// oneWay delay in each direction. It closes when the test ends.
func NewProxy(t testing.TB, target string, oneWay time.Duration) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, delay: oneWay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Host is the proxy's IP address as text.
func (p *Proxy) Host() string { h, _, _ := net.SplitHostPort(p.Addr()); return h }

// PortString is the proxy's port as text.
func (p *Proxy) PortString() string { return strconv.Itoa(p.Port()) }

// BlackHole makes the proxy swallow every byte in both directions while on,
// keeping the connections open: a peer that vanished without a FIN.
func (p *Proxy) BlackHole(on bool) { p.blackhole.Store(on) }

// Cut closes every connection the proxy carries now.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	// The dial to the target costs one delayed round trip, as the SYN
	// exchange would on a real link.
	time.Sleep(2 * p.delay)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
	p.track(client, false)
	p.track(server, false)
}

type chunk struct {
	at   time.Time
	data []byte
}

// pipe copies src to dst, holding every chunk for the delay.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.at); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(c.data); err != nil {
				src.Close()
				for range q {
				}
				return
			}
		}
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			q <- chunk{at: time.Now().Add(p.delay), data: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}

// ListenerThatNeverSpeaks returns the address of a listener that accepts
// TCP connections and then never sends a byte: a dial must give up on its
// deadline.
func ListenerThatNeverSpeaks(t testing.TB) string {
	return listener(t, func(c net.Conn, stop <-chan struct{}) { <-stop })
}

// ListenerThatDropsHandshake returns the address of a listener that sends
// an SSH version line, reads the client's first bytes and then closes the
// connection: a server that gives up mid-handshake.
func ListenerThatDropsHandshake(t testing.TB) string {
	return listener(t, func(c net.Conn, _ <-chan struct{}) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
		buf := make([]byte, 256)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(buf)
	})
}

func listener(t testing.TB, handle func(net.Conn, <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, stop)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(stop)
		wg.Wait()
	})
	return ln.Addr().String()
}
