// Command loadgen drives a 3-node coordination service (etcd, ZooKeeper, the PySyncObj
// benchmark server, or any Redis-protocol server such as paxosd) with N concurrent clients
// for a fixed time and prints ONE JSON line with throughput and latency percentiles.
//
// Theory of operation:
//
//  1. Setup (not timed): every client opens its own connection (etcd: its own clientv3
//     client and gRPC connection; ZooKeeper: its own session; RESP: its own TCP
//     connection), pinned to endpoint i % len(endpoints), as etcd's own benchmark tool
//     does. ZooKeeper's znodes /bench/kNNNNNN are created once. For reads, every key is
//     written once first (-prefill).
//  2. Warm-up (-warmup): operations run but are not counted. Then "WINDOW_START <unix ns>"
//     is printed on stderr, the measured window (-duration) runs, and "WINDOW_END <unix ns>"
//     follows, so a caller can sample server CPU over exactly the window.
//  3. Each client issues one request at a time (closed loop; with -rate, paced open loop).
//     A latency is recorded only for a successful request that completes inside the window,
//     in a per-client log-linear histogram (exact below 256 ns, then 128 sub-buckets per
//     power of two: relative error under 0.4%), merged at the end. No locks on the hot path.
//  4. A transport error (connection refused or reset, timeout) closes the connection and
//     moves the client to the next endpoint. A server error keeps the connection, except
//     paxosd's "-NOTLEADER leader=<id> <host:port>", which moves the client to that address.
//
// Build offline against Debian's Go packages (bench/setup.sh does this):
//
//	GO111MODULE=off GOPATH=$tmp:/usr/share/gocode go build -o bench/bin/loadgen ./bench/loadgen
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"math/rand"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/samuel/go-zookeeper/zk"
	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ---------------------------------------------------------------------------------------
// Configuration

type config struct {
	system       string
	endpoints    []string
	clients      int
	duration     time.Duration
	warmup       time.Duration
	op           string
	readRatio    float64
	valueSize    int
	keys         int
	linearizable bool
	timeout      time.Duration
	rate         float64
	prefill      bool
	ackLog       string
	zkRoot       string
	keyPrefix    string
	conns        int
	cpuProfile   string
}

func parseFlags() *config {
	c := &config{}
	var endpoints string
	flag.StringVar(&c.system, "system", "", "etcd | zk | pysyncobj | resp")
	flag.StringVar(&endpoints, "endpoints", "", "comma-separated host:port list (client ports)")
	flag.IntVar(&c.clients, "clients", 1, "concurrent clients, each with its own connection/session")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured window")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured run before the window")
	flag.StringVar(&c.op, "op", "write", "write | read | mixed")
	flag.Float64Var(&c.readRatio, "read-ratio", 0.5, "share of reads for -op mixed")
	flag.IntVar(&c.valueSize, "value-size", 16, "value size in bytes (ASCII)")
	flag.IntVar(&c.keys, "keys", 1000, "number of distinct keys, chosen uniformly")
	flag.BoolVar(&c.linearizable, "linearizable", true,
		"linearizable reads: etcd default (read-index) vs serializable; zk: sync() before "+
			"getData (ZooKeeper has no linearizable read; sync only narrows staleness); "+
			"pysyncobj: LGET, a read through the Raft log, vs GET, a local stale read; "+
			"resp: plain GET (the server decides)")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "per-request timeout")
	flag.Float64Var(&c.rate, "rate", 0, "total request rate in ops/s, paced per client (0: closed loop, as fast as possible)")
	flag.BoolVar(&c.prefill, "prefill", true, "for read/mixed: write every key once before the run")
	flag.StringVar(&c.ackLog, "ack-log", "", "write one line per request: start_unix_ns end_unix_ns ok(0/1) (for failover timing)")
	flag.StringVar(&c.zkRoot, "zk-root", "/bench", "ZooKeeper parent znode")
	flag.StringVar(&c.keyPrefix, "key-prefix", "k", "key name prefix")
	flag.IntVar(&c.conns, "conns", 0, "etcd only: clientv3 clients (gRPC connections) shared round-robin by the clients (0: one per client)")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the load generator to this file")
	flag.Parse()
	for _, e := range strings.Split(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.endpoints = append(c.endpoints, e)
		}
	}
	switch {
	case c.system != "etcd" && c.system != "zk" && c.system != "pysyncobj" && c.system != "resp":
		fatalf("-system must be etcd, zk, pysyncobj or resp")
	case len(c.endpoints) == 0:
		fatalf("-endpoints is required")
	case c.clients < 1:
		fatalf("-clients must be >= 1")
	case c.op != "write" && c.op != "read" && c.op != "mixed":
		fatalf("-op must be write, read or mixed")
	case c.keys < 1 || c.valueSize < 0:
		fatalf("-keys must be >= 1 and -value-size >= 0")
	}
	return c
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

// ---------------------------------------------------------------------------------------
// Histogram: log-linear buckets of nanoseconds, HdrHistogram-like (8 significant bits).

const (
	histExact = 256 // values below are exact
	histSub   = 128 // sub-buckets per power of two above
	histSize  = histExact + 56*histSub
)

type histogram struct {
	counts [histSize]uint64
	n      uint64
	max    uint64
	sum    float64
}

func bucketOf(v uint64) int {
	if v < histExact {
		return int(v)
	}
	e := bits.Len64(v) - 8 // >= 1
	m := v >> uint(e)      // in [128, 255]
	return histExact + (e-1)*histSub + int(m-histSub)
}

// valueOf returns the midpoint of bucket i.
func valueOf(i int) float64 {
	if i < histExact {
		return float64(i)
	}
	j := i - histExact
	e := uint(j/histSub + 1)
	m := uint64(j%histSub + histSub)
	lo := m << e
	hi := (m + 1) << e
	return float64(lo+hi-1) / 2
}

func (h *histogram) record(ns uint64) {
	h.counts[bucketOf(ns)]++
	h.n++
	h.sum += float64(ns)
	if ns > h.max {
		h.max = ns
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value in nanoseconds at quantile q (0 < q <= 1).
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := valueOf(i)
			if v > float64(h.max) {
				v = float64(h.max)
			}
			return v
		}
	}
	return float64(h.max)
}

// ---------------------------------------------------------------------------------------
// Clients

// serverError is an error reply from a live server: the connection stays usable.
type serverError struct {
	msg      string
	redirect string // host:port to move to (paxosd's NOTLEADER), or ""
}

func (e *serverError) Error() string { return e.msg }

type client interface {
	write(key int, value []byte) error
	read(key int) error
	close()
}

type dialer func(endpoint string) (client, error)

func keyName(c *config, k int) string { return fmt.Sprintf("%s%06d", c.keyPrefix, k) }

// --- etcd -------------------------------------------------------------------------------

type etcdClient struct {
	cfg    *config
	cli    *clientv3.Client
	keys   []string
	shared bool // one of -conns shared connections: never closed by a worker
}

func dialEtcd(cfg *config, keys []string) dialer {
	return func(ep string) (client, error) {
		if !strings.Contains(ep, "://") {
			ep = "http://" + ep
		}
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{ep},
			DialTimeout: cfg.timeout,
			LogConfig:   &zap.Config{Level: zap.NewAtomicLevelAt(zap.ErrorLevel), Encoding: "console", OutputPaths: []string{"stderr"}, ErrorOutputPaths: []string{"stderr"}},
		})
		if err != nil {
			return nil, err
		}
		return &etcdClient{cfg: cfg, cli: cli, keys: keys}, nil
	}
}

func etcdErr(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return err // transport: reconnect elsewhere
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &serverError{msg: err.Error()}
}

func (c *etcdClient) write(key int, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	_, err := c.cli.Put(ctx, c.keys[key], string(value))
	return etcdErr(err)
}

func (c *etcdClient) read(key int) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	var err error
	if c.cfg.linearizable {
		_, err = c.cli.Get(ctx, c.keys[key])
	} else {
		_, err = c.cli.Get(ctx, c.keys[key], clientv3.WithSerializable())
	}
	return etcdErr(err)
}

func (c *etcdClient) close() {
	if !c.shared {
		go c.cli.Close()
	}
}

// --- ZooKeeper --------------------------------------------------------------------------

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

type zkClient struct {
	cfg   *config
	conn  *zk.Conn
	paths []string
}

func zkConnect(cfg *config, ep string) (*zk.Conn, error) {
	// ZooKeeper negotiates the session timeout into [2, 20] x tickTime (4 s .. 40 s here).
	conn, events, err := zk.Connect([]string{ep}, 4*time.Second, zk.WithLogger(nopLogger{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, err
	}
	deadline := time.NewTimer(cfg.timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-deadline.C:
			go conn.Close()
			return nil, fmt.Errorf("zk: no session with %s within %s", ep, cfg.timeout)
		}
	}
}

func dialZK(cfg *config, paths []string) dialer {
	return func(ep string) (client, error) {
		conn, err := zkConnect(cfg, ep)
		if err != nil {
			return nil, err
		}
		return &zkClient{cfg: cfg, conn: conn, paths: paths}, nil
	}
}

// zkCall bounds a ZooKeeper call by the request timeout: go-zookeeper has none of its own
// and a request queued on a connection that is reconnecting would wait forever.
func (c *zkClient) zkCall(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(c.cfg.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return zkErr(err)
	case <-t.C:
		return fmt.Errorf("zk: request timed out after %s", c.cfg.timeout)
	}
}

func zkErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists):
		return &serverError{msg: err.Error()}
	}
	return err // connection closed, session expired, not connected: reconnect elsewhere
}

func (c *zkClient) write(key int, value []byte) error {
	return c.zkCall(func() error { _, err := c.conn.Set(c.paths[key], value, -1); return err })
}

func (c *zkClient) read(key int) error {
	return c.zkCall(func() error {
		if c.cfg.linearizable {
			if _, err := c.conn.Sync(c.paths[key]); err != nil {
				return err
			}
		}
		_, _, err := c.conn.Get(c.paths[key])
		return err
	})
}

func (c *zkClient) close() { go c.conn.Close() }

// zkSetup creates the parent znode and one znode per key, once (it checks the last one).
func zkSetup(cfg *config, paths []string, value []byte) (int64, error) {
	var conn *zk.Conn
	var err error
	for _, ep := range cfg.endpoints {
		if conn, err = zkConnect(cfg, ep); err == nil {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if ok, _, err := conn.Exists(paths[len(paths)-1]); err == nil && ok {
		return 0, nil
	}
	if _, err := conn.Create(cfg.zkRoot, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return 0, err
	}
	var created int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	work := make(chan string)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				_, err := conn.Create(p, value, 0, zk.WorldACL(zk.PermAll))
				if err != nil && !errors.Is(err, zk.ErrNodeExists) {
					firstErr.CompareAndSwap(nil, err)
				}
				atomic.AddInt64(&created, 1)
			}
		}()
	}
	for _, p := range paths {
		work <- p
	}
	close(work)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return created, e.(error)
	}
	return created, nil
}

// --- RESP (paxosd, Redis, and the PySyncObj benchmark server) --------------------------

type respClient struct {
	cfg     *config
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	keys    [][]byte
	readCmd []byte
	scratch []byte
}

func dialRESP(cfg *config, keys [][]byte) dialer {
	readCmd := []byte("GET")
	if cfg.system == "pysyncobj" && cfg.linearizable {
		readCmd = []byte("LGET")
	}
	return func(ep string) (client, error) {
		conn, err := net.DialTimeout("tcp", ep, cfg.timeout)
		if err != nil {
			return nil, err
		}
		return &respClient{
			cfg: cfg, conn: conn, keys: keys, readCmd: readCmd,
			r: bufio.NewReaderSize(conn, 16384), w: bufio.NewWriterSize(conn, 16384),
		}, nil
	}
}

func (c *respClient) send(args ...[]byte) error {
	b := c.scratch[:0]
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	c.scratch = b
	if err := c.conn.SetDeadline(time.Now().Add(c.cfg.timeout)); err != nil {
		return err
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.reply()
}

func (c *respClient) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("resp: malformed line %q", l)
	}
	return l[:len(l)-2], nil
}

// reply reads one reply; an error reply becomes a *serverError.
func (c *respClient) reply() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	switch l[0] {
	case '+', ':', '_', ',', '#':
		return nil
	case '-':
		msg := string(l[1:])
		se := &serverError{msg: msg}
		if strings.HasPrefix(msg, "NOTLEADER") {
			// paxosd: "NOTLEADER leader=<id|none> <host:port|-> <message>"
			if f := strings.Fields(msg); len(f) >= 3 && strings.Contains(f[2], ":") {
				se.redirect = f[2]
			}
		}
		return se
	case '$', '=', '!':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return fmt.Errorf("resp: bad bulk length %q", l)
		}
		if n < 0 {
			return nil
		}
		_, err = c.r.Discard(n + 2)
		return err
	case '*', '%', '~', '>':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return fmt.Errorf("resp: bad aggregate length %q", l)
		}
		if l[0] == '%' {
			n *= 2
		}
		var first error
		for i := 0; i < n; i++ {
			if err := c.reply(); err != nil {
				var se *serverError
				if !errors.As(err, &se) {
					return err
				}
				if first == nil {
					first = err
				}
			}
		}
		return first
	}
	return fmt.Errorf("resp: unexpected reply %q", l)
}

var (
	cmdSET = []byte("SET")
)

func (c *respClient) write(key int, value []byte) error { return c.send(cmdSET, c.keys[key], value) }
func (c *respClient) read(key int) error                { return c.send(c.readCmd, c.keys[key]) }
func (c *respClient) close()                            { c.conn.Close() }

// ---------------------------------------------------------------------------------------
// Workers

type ack struct {
	start, end int64
	ok         bool
}

type worker struct {
	id      int
	hist    histogram
	ops     uint64 // successful, in window
	errs    uint64 // failed requests and failed connection attempts, in window
	opsAll  uint64 // successful, whole run (setup excluded)
	errsAll uint64
	errMsg  string
	acks    []ack
}

type run struct {
	cfg         *config
	dial        dialer
	value       []byte
	windowStart atomic.Int64 // unix ns; set once the warm-up ends
	windowEnd   int64
	stop        int64
}

func (r *run) work(w *worker, cl client, start <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	cfg := r.cfg
	epIdx := w.id % len(cfg.endpoints)
	target := cfg.endpoints[epIdx]
	rng := rand.New(rand.NewSource(int64(w.id)*7919 + 17))
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(cfg.clients) / cfg.rate * float64(time.Second))
	}
	<-start
	next := time.Now().Add(time.Duration(rng.Int63n(int64(interval) + 1)))
	var fail func(err error)
	fail = func(err error) {
		var se *serverError
		if errors.As(err, &se) && se.redirect == "" {
			return // the server answered: keep the connection
		}
		if cl != nil {
			cl.close()
			cl = nil
		}
		if se != nil {
			target = se.redirect
		} else {
			epIdx = (epIdx + 1) % len(cfg.endpoints)
			target = cfg.endpoints[epIdx]
		}
	}
	for {
		now := time.Now()
		if now.UnixNano() >= r.stop {
			break
		}
		if interval > 0 {
			if d := next.Sub(now); d > 0 {
				time.Sleep(d)
			} else if -d > interval {
				next = now // fell behind (a stall): do not burst to catch up
			}
			next = next.Add(interval)
		}
		if cl == nil {
			var err error
			t0 := time.Now().UnixNano()
			cl, err = r.dial(target)
			if err != nil {
				cl = nil
				w.count(r, t0, time.Now().UnixNano(), err)
				fail(err)
				time.Sleep(5 * time.Millisecond)
				continue
			}
		}
		key := rng.Intn(cfg.keys)
		isRead := cfg.op == "read" || (cfg.op == "mixed" && rng.Float64() < cfg.readRatio)
		t0 := time.Now()
		var err error
		if isRead {
			err = cl.read(key)
		} else {
			err = cl.write(key, r.value)
		}
		t1 := time.Now()
		w.count(r, t0.UnixNano(), t1.UnixNano(), err)
		if err == nil {
			ws := r.windowStart.Load()
			if ws != 0 && t1.UnixNano() >= ws && t1.UnixNano() <= r.windowEnd {
				w.hist.record(uint64(t1.Sub(t0)))
			}
		} else {
			fail(err)
		}
	}
	if cl != nil {
		cl.close()
	}
}

func (w *worker) count(r *run, start, end int64, err error) {
	ok := err == nil
	if r.cfg.ackLog != "" {
		w.acks = append(w.acks, ack{start, end, ok})
	}
	ws := r.windowStart.Load()
	inWindow := ws != 0 && end >= ws && end <= r.windowEnd
	if ok {
		w.opsAll++
		if inWindow {
			w.ops++
		}
		return
	}
	w.errsAll++
	if inWindow {
		w.errs++
	}
	if w.errMsg == "" {
		w.errMsg = err.Error()
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	cfg := parseFlags()
	value := make([]byte, cfg.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	names := make([]string, cfg.keys)
	for k := range names {
		names[k] = keyName(cfg, k)
	}
	var dial dialer
	switch cfg.system {
	case "etcd":
		dial = dialEtcd(cfg, names)
	case "zk":
		paths := make([]string, cfg.keys)
		for k := range paths {
			paths[k] = cfg.zkRoot + "/" + names[k]
		}
		if _, err := zkSetup(cfg, paths, value); err != nil {
			fatalf("zk setup: %v", err)
		}
		dial = dialZK(cfg, paths)
	default:
		keys := make([][]byte, cfg.keys)
		for k := range keys {
			keys[k] = []byte(names[k])
		}
		dial = dialRESP(cfg, keys)
	}
	r := &run{cfg: cfg, dial: dial, value: value}

	// Setup: connect every client (pinned to endpoint i % n), in parallel, then prefill.
	workers := make([]*worker, cfg.clients)
	clients := make([]client, cfg.clients)
	var setupWG sync.WaitGroup
	var setupErr atomic.Value
	for i := range workers {
		workers[i] = &worker{id: i}
		setupWG.Add(1)
		go func(i int) {
			defer setupWG.Done()
			ep := cfg.endpoints[i%len(cfg.endpoints)]
			cl, err := dial(ep)
			if err != nil {
				setupErr.CompareAndSwap(nil, fmt.Errorf("connect %s: %w", ep, err))
				return
			}
			clients[i] = cl
			if cfg.prefill && cfg.op != "write" {
				for k := i; k < cfg.keys; k += cfg.clients {
					if err := cl.write(k, value); err != nil {
						setupErr.CompareAndSwap(nil, fmt.Errorf("prefill: %w", err))
						return
					}
				}
			}
		}(i)
	}
	setupWG.Wait()
	if e := setupErr.Load(); e == nil && cfg.system == "etcd" && cfg.conns > 0 && cfg.conns < cfg.clients {
		// -conns: keep the first `conns` connections and share them round-robin.
		for i := cfg.conns; i < cfg.clients; i++ {
			clients[i].close()
			shared := *clients[i%cfg.conns].(*etcdClient)
			shared.shared = true
			clients[i] = &shared
		}
		for i := 0; i < cfg.conns; i++ {
			clients[i].(*etcdClient).shared = true
		}
	}
	if e := setupErr.Load(); e != nil {
		for _, cl := range clients {
			if cl != nil {
				cl.close()
			}
		}
		fatalf("setup: %v", e)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	t0 := time.Now()
	ws := t0.Add(cfg.warmup)
	r.windowEnd = ws.Add(cfg.duration).UnixNano()
	r.stop = r.windowEnd
	for i, w := range workers {
		wg.Add(1)
		go r.work(w, clients[i], start, &wg)
	}
	var cpuStart float64
	go func() {
		time.Sleep(time.Until(ws))
		cpuStart = cpuSeconds()
		if cfg.cpuProfile != "" {
			if f, err := os.Create(cfg.cpuProfile); err == nil {
				_ = pprof.StartCPUProfile(f)
			}
		}
		r.windowStart.Store(time.Now().UnixNano())
		fmt.Fprintf(os.Stderr, "WINDOW_START %d\n", time.Now().UnixNano())
	}()
	close(start)
	time.Sleep(time.Until(time.Unix(0, r.windowEnd)))
	cpuEnd := cpuSeconds()
	if cfg.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Fprintf(os.Stderr, "WINDOW_END %d\n", time.Now().UnixNano())
	wg.Wait()
	windowS := float64(r.windowEnd-r.windowStart.Load()) / 1e9

	var h histogram
	var ops, errs, opsAll, errsAll uint64
	errMsg := ""
	for _, w := range workers {
		h.merge(&w.hist)
		ops += w.ops
		errs += w.errs
		opsAll += w.opsAll
		errsAll += w.errsAll
		if errMsg == "" {
			errMsg = w.errMsg
		}
	}
	if cfg.ackLog != "" {
		if err := writeAcks(cfg.ackLog, workers); err != nil {
			fatalf("ack log: %v", err)
		}
	}
	ms := func(ns float64) float64 { return float64(int64(ns/1e3+0.5)) / 1e3 } // ms, 3 decimals
	mean := 0.0
	if h.n > 0 {
		mean = h.sum / float64(h.n)
	}
	out := map[string]any{
		"system":       cfg.system,
		"op":           cfg.op,
		"clients":      cfg.clients,
		"duration_s":   float64(int64(windowS*1000+0.5)) / 1000,
		"ops":          ops,
		"errors":       errs,
		"ops_per_s":    float64(int64(float64(ops)/windowS*10+0.5)) / 10,
		"p50_ms":       ms(h.quantile(0.50)),
		"p99_ms":       ms(h.quantile(0.99)),
		"p999_ms":      ms(h.quantile(0.999)),
		"max_ms":       ms(float64(h.max)),
		"mean_ms":      ms(mean),
		"p90_ms":       ms(h.quantile(0.90)),
		"client_cpu_s": float64(int64((cpuEnd-cpuStart)*1000+0.5)) / 1000,
		"value_size":   cfg.valueSize,
		"keys":         cfg.keys,
		"linearizable": cfg.linearizable,
		"endpoints":    strings.Join(cfg.endpoints, ","),
		"warmup_s":     cfg.warmup.Seconds(),
		"ops_total":    opsAll,
		"errors_total": errsAll,
		"rate":         cfg.rate,
	}
	if errMsg != "" {
		out["first_error"] = errMsg
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fatalf("output: %v", err)
	}
}

func writeAcks(path string, workers []*worker) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, wk := range workers {
		for _, a := range wk.acks {
			ok := 0
			if a.ok {
				ok = 1
			}
			fmt.Fprintf(w, "%d %d %d %d\n", a.start, a.end, ok, wk.id)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
