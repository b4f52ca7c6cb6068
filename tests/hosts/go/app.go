package main

import (
	"database/sql"
	"fmt"

	sqlite3 "github.com/mattn/go-sqlite3"
)

func main() {
	// Load litejet through a bootstrap connection before opening a replicated
	// database: database/sql loads Extensions into a connection after opening it.
	sql.Register("sqlite3_litejet", &sqlite3.SQLiteDriver{Extensions: []string{"build/litejet"}})
	boot, _ := sql.Open("sqlite3_litejet", ":memory:")
	if err := boot.Ping(); err != nil { // opens a connection: litejet is now the default VFS
		panic(err)
	}
	db, _ := sql.Open("sqlite3_litejet", "file:app.db?nats=nats://127.0.0.1:4222&role=primary")
	if _, err := db.Exec("create table if not exists t(x); insert into t values (42)"); err != nil {
		panic(err)
	}
	var txid, acked int64
	var checksum string
	db.QueryRow("select repl_position(), repl_checksum()").Scan(&txid, &checksum)
	db.QueryRow("select repl_wait(?, 30000)", txid).Scan(&acked)
	fmt.Println(txid, acked, checksum)
}
