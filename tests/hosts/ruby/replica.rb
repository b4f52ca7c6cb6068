# The Ruby replica of test_ruby.py: ruby replica.rb URI TXID waits (bounded)
# for TXID and prints the state as JSON. Run where build -> the build directory.
require "json"
require "sqlite3"
boot = SQLite3::Database.new(":memory:")
boot.enable_load_extension(true)
boot.load_extension("build/litejet")
db = SQLite3::Database.new(ARGV[0])
db.busy_timeout = 5000
out = {"wait" => db.get_first_value("select repl_wait(?, 30000)", [Integer(ARGV[1])])}
out["txid"] = db.get_first_value("select repl_position()")
out["checksum"] = db.get_first_value("select repl_checksum()")
out["role"] = JSON.parse(db.get_first_value("select repl_status()"))["role"]
out["rows"] = db.execute("select id, quote(v), hex(b) from t order by id")
db.close
puts JSON.generate(out)
