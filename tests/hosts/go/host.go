// The Go host of test_go.py (database/sql with mattn/go-sqlite3 on Debian's
// SQLite, tags libsqlite3 sqlite_load_extension):
//
//	host documented URI ROWS  load litejet through a bootstrap connection, then
//	                          open URI, write, wait for the ack; print JSON
//	host naive URI            sql.Register with Extensions and open URI the way
//	                          a new user would; print each attempt's outcome
//
// Run in a directory where build -> the build directory.
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	sqlite3 "github.com/mattn/go-sqlite3"
)

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(1)
	}
}

func state(db *sql.DB, out map[string]interface{}) {
	var txid int64
	var checksum, status string
	must(db.QueryRow("select repl_position(), repl_checksum(), repl_status()").Scan(&txid, &checksum, &status), "state")
	out["txid"], out["checksum"] = txid, checksum
	var st map[string]interface{}
	must(json.Unmarshal([]byte(status), &st), "repl_status")
	out["role"] = st["role"]
	rows, err := db.Query("select id, quote(v), hex(b) from t order by id")
	must(err, "rows")
	var all [][]interface{}
	for rows.Next() {
		var id int64
		var v, b string
		must(rows.Scan(&id, &v, &b), "scan")
		all = append(all, []interface{}{id, v, b})
	}
	out["rows"] = all
}

func main() {
	sql.Register("sqlite3_litejet", &sqlite3.SQLiteDriver{Extensions: []string{"build/litejet"}})
	out := map[string]interface{}{}
	switch os.Args[1] {
	case "documented":
		boot, err := sql.Open("sqlite3_litejet", ":memory:")
		must(err, "open :memory:")
		must(boot.Ping(), "bootstrap connection")
		db, err := sql.Open("sqlite3_litejet", os.Args[2])
		must(err, "open")
		db.SetMaxOpenConns(1) // one connection: a transaction below is one TXID
		n, _ := strconv.Atoi(os.Args[3])
		_, err = db.Exec("create table t(id integer primary key, v, b blob)")
		must(err, "create table")
		for i := 0; i < n; i += 25 {
			tx, err := db.Begin()
			must(err, "begin")
			for j := i; j < i+25 && j < n; j++ {
				var v interface{} = j
				if j%2 == 1 {
					v = fmt.Sprintf("go %d", j)
				}
				_, err = tx.Exec("insert into t(v, b) values (?, randomblob(?))", v, 40+j*11%700)
				must(err, "insert")
			}
			must(tx.Commit(), "commit")
		}
		var sqliteVersion string
		must(db.QueryRow("select sqlite_version()").Scan(&sqliteVersion), "version")
		out["sqlite_version"] = sqliteVersion
		state(db, out)
		var acked int64
		must(db.QueryRow("select repl_wait(?, 30000)", out["txid"]).Scan(&acked), "repl_wait")
		out["wait"] = acked
		must(db.Close(), "close")
	case "naive":
		db, err := sql.Open("sqlite3_litejet", os.Args[2])
		must(err, "open")
		var attempts []string
		for i := 0; i < 2; i++ {
			if _, err := db.Exec("create table if not exists t(id integer primary key, v, b blob)"); err != nil {
				attempts = append(attempts, "error: "+err.Error())
			} else {
				attempts = append(attempts, "ok")
			}
		}
		out["attempts"] = attempts
		var txid int64
		if err := db.QueryRow("select repl_position()").Scan(&txid); err == nil {
			out["txid"] = txid
		} else {
			out["txid_error"] = err.Error()
		}
	default:
		must(fmt.Errorf("usage: host documented URI ROWS | host naive URI"), os.Args[1])
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
