// dqlite side of bench/sync_bench.py: a dqlite node (one process per node of
// a 3-node cluster on loopback) and a writer doing one-row commits through
// the leader, the same writes litejet's sync_writer does. A benchmark, not a test.
//
//	dqlite_bench node -dir D -addr 127.0.0.1:P [-join 127.0.0.1:Q]
//	dqlite_bench write -cluster A,B,C -n N -writers W -out FILE
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/canonical/go-dqlite/app"
	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "dqlite_bench: "+format+"\n", args...)
	os.Exit(2)
}

func node(args []string) {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	dir := fs.String("dir", "", "data directory")
	addr := fs.String("addr", "", "127.0.0.1:port to listen on")
	join := fs.String("join", "", "address of a node already in the cluster")
	_ = fs.Parse(args)
	if *dir == "" || *addr == "" {
		die("node: -dir and -addr are required")
	}
	opts := []app.Option{app.WithAddress(*addr), app.WithRolesAdjustmentFrequency(200 * time.Millisecond)}
	if *join != "" {
		opts = append(opts, app.WithCluster([]string{*join}))
	}
	a, err := app.New(*dir, opts...)
	if err != nil {
		die("node %s: %v", *addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := a.Ready(ctx); err != nil {
		die("node %s: not ready within 30 s: %v", *addr, err)
	}
	cancel()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	a.Close()
}

// Waits (bounded) until the cluster has three voters.
func waitVoters(store client.NodeStore) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cli, err := client.FindLeader(ctx, store)
		if err == nil {
			nodes, err := cli.Cluster(ctx)
			cli.Close()
			voters := 0
			for _, n := range nodes {
				if n.Role == client.Voter {
					voters++
				}
			}
			if err == nil && voters == 3 {
				cancel()
				return
			}
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	die("the cluster did not reach 3 voters within 30 s")
}

func write(args []string) {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	cluster := fs.String("cluster", "", "comma-separated node addresses")
	n := fs.Int("n", 2000, "commits in all")
	writers := fs.Int("writers", 1, "concurrent writers (goroutines, one connection each)")
	table := fs.String("table", "t", "table name")
	out := fs.String("out", "", "file for the per-commit latencies (ns, one a line)")
	_ = fs.Parse(args)
	var infos []client.NodeInfo
	for _, a := range strings.Split(*cluster, ",") {
		infos = append(infos, client.NodeInfo{Address: a})
	}
	store := client.NewInmemNodeStore()
	if err := store.Set(context.Background(), infos); err != nil {
		die("node store: %v", err)
	}
	waitVoters(store)
	drv, err := driver.New(store)
	if err != nil {
		die("driver: %v", err)
	}
	sql.Register("dqlite", drv)
	db, err := sql.Open("dqlite", "bench.db")
	if err != nil {
		die("open: %v", err)
	}
	db.SetMaxOpenConns(*writers)
	db.SetMaxIdleConns(*writers)
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS " + *table + "(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)"); err != nil {
		die("create table: %v", err)
	}
	per := *n / *writers
	var retries int64
	lat := make([][]int64, *writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, *writers)
	for w := 0; w < *writers; w++ {
		conn, err := db.Conn(context.Background())
		if err != nil {
			die("connection %d: %v", w, err)
		}
		stmt, err := conn.PrepareContext(context.Background(), "INSERT INTO "+*table+"(w, v) VALUES (?, ?)")
		if err != nil {
			die("prepare: %v", err)
		}
		wg.Add(1)
		go func(w int, conn *sql.Conn, stmt *sql.Stmt) {
			defer wg.Done()
			defer conn.Close()
			defer stmt.Close()
			v := make([]byte, 100)
			l := make([]int64, 0, per)
			<-start
			for i := 0; i < per; i++ {
				t0 := time.Now()
				for {
					_, err := stmt.Exec(w, v)
					if err == nil {
						break
					}
					// The leader runs one write transaction at a time and
					// answers the others "busy" at once: retry, as an
					// application would (counted; the wait is in the time).
					var de driver.Error
					if errors.As(err, &de) && de.Code&0xff == driver.ErrBusy && time.Since(t0) < 10*time.Second {
						atomic.AddInt64(&retries, 1)
						time.Sleep(50 * time.Microsecond)
						continue
					}
					errs <- fmt.Errorf("writer %d, commit %d: %v", w, i, err)
					return
				}
				l = append(l, time.Since(t0).Nanoseconds())
			}
			lat[w] = l
		}(w, conn, stmt)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(errs)
	for err := range errs {
		die("%v", err)
	}
	var all []int64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	var rows int64
	if err := db.QueryRow("SELECT count(*) FROM " + *table).Scan(&rows); err != nil {
		die("count: %v", err)
	}
	if rows != int64(len(all)) {
		die("table %s has %d rows after %d commits", *table, rows, len(all))
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			die("%s: %v", *out, err)
		}
		for _, x := range all {
			fmt.Fprintln(f, x)
		}
		f.Close()
	}
	fmt.Printf("{\"commits\": %d, \"seconds\": %.6f, \"retries\": %d}\n", len(all), elapsed.Seconds(), retries)
	db.Close()
}

func main() {
	if len(os.Args) < 2 {
		die("usage: dqlite_bench node|write ...")
	}
	switch os.Args[1] {
	case "node":
		node(os.Args[2:])
	case "write":
		write(os.Args[2:])
	default:
		die("unknown command %q", os.Args[1])
	}
}
