require "sqlite3"
boot = SQLite3::Database.new(":memory:")
boot.enable_load_extension(true)
boot.load_extension("build/litejet")  # litejet becomes the default VFS
db = SQLite3::Database.new("file:app.db?nats=nats://127.0.0.1:4222&role=primary")
db.busy_timeout = 5000
db.execute("create table if not exists t(x)")
db.execute("insert into t values (?)", [42])
txid = db.get_first_value("select repl_position()")
puts [txid, db.get_first_value("select repl_wait(?, 30000)", [txid]), db.get_first_value("select repl_checksum()")].join(" ")
