// Package testenv starts real, throwaway MariaDB servers for tests and
// benchmarks: no mocks where the real server can run (see docs on "Real
// components in tests").
//
// Every [Server] gets its own temporary datadir, a free TCP port on 127.0.0.1
// and a unix socket, and is torn down by [Server.Stop] (or t.Cleanup when
// started through [MariaDB]).
//
// Start is fast because mariadb-install-db runs once per mariadbd version: its
// result, including the users and databases below, is kept as a template
// datadir in the cache dir ($PISANIX_CACHE, else $XDG_CACHE_HOME/pisanix,
// else $HOME/.cache/pisanix) and copied for each instance. Building the
// template and installing Debian's mariadb-server when it is missing are each
// guarded by a cross-process file lock, since several test binaries run at once.
//
// Measured with BenchmarkStart on the shared 2-core development machine
// (MariaDB 10.11.19, load average 4-5 from parallel compiles, never idle):
// building the template takes about 3 s, once per cache dir; after that
// StartMariaDB (copy the 26 MB template, start mariadbd, first successful
// connection over the socket) takes 0.35-0.56 s and Stop about 40 ms. Two
// instances started in parallel together with the template build were ready
// after 4 s.
//
// Accounts and databases present in every instance:
//
//	root@localhost   (unix socket, no password; used by Exec and RootDB)
//	root@'%'         and root@'127.0.0.1': no password, mysql_native_password
//	gotest@'%'       password "secret", ALL PRIVILEGES ON *.* WITH GRANT OPTION
//	native@'%'       password "nativepass", mysql_native_password, ALL PRIVILEGES ON *.*
//	app@'%'          password "apppass", DML and DDL on *.* but no admin privileges,
//	                 so read_only=ON stops its writes (gotest and native bypass it)
//	databases        gotest, socksdb
//
// Servers run with skip-name-resolve, max_allowed_packet=256M, local_infile=1,
// character-set-server utf8mb4 (utf8mb4_general_ci), max_connections 500 by
// default, a small InnoDB buffer pool and redo log, and relaxed durability
// (the data is thrown away).
package testenv
