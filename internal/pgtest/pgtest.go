// Package pgtest runs a throwaway PostgreSQL server on loopback for the
// tests of packages that use the store: Debian's postgresql binaries,
// started in a temporary directory, one server per test binary and one
// database per test.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// When the binaries are missing the tests that ask for a server are
// skipped, unless MAILWALL_E2E=1, where that is a failure.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// server is the one started by Main; nil before the first DSN call.
var (
	mu      sync.Mutex
	srv     *server
	srvErr  error
	started atomic.Bool
	dbSeq   atomic.Int64
)

type server struct {
	dir, bin, data string
	cred           *syscall.Credential
	port           int
}

// Main runs the tests, then stops the server if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if srv != nil {
		srv.stop()
	}
	return code
}

// DSN returns the address of a new, empty database for this test.
func DSN(t testing.TB) string {
	t.Helper()
	mu.Lock()
	if !started.Load() {
		srv, srvErr = start()
		started.Store(true)
	}
	s, err := srv, srvErr
	mu.Unlock()
	if err != nil {
		if os.Getenv("MAILWALL_E2E") != "" {
			t.Fatalf("pgtest: %v", err)
		}
		t.Skipf("pgtest: %v (set MAILWALL_E2E=1 to make this a failure)", err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	db, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.dsn(name)
}

func (s *server) dsn(db string) string {
	return fmt.Sprintf("postgres://mailwall@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

func binDir() (string, error) {
	if d := os.Getenv("MAILWALL_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (apt-get install postgresql)")
}

func start() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mailwall-pg-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, bin: bin, data: filepath.Join(dir, "data")}
	// PostgreSQL refuses to run as root: run it as the postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if out, err := s.run("initdb", "-D", s.data, "-A", "trust", "-U", "mailwall", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c full_page_writes=off", s.port, dir)
	if out, err := s.run("pg_ctl", "-D", s.data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v\n%s%s", err, out, log)
	}
	return s, nil
}

func (s *server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func (s *server) stop() {
	s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
}
