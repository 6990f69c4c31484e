// Command surge-emulator serves an emulated Surge API, to run the operator
// locally, or to test software in any language against Surge without
// reaching it, with faults on demand:
//
//	surge-emulator --listen 127.0.0.1:8088 \
//		--api-key sk_test_a --api-key sk_test_b \
//		--account acct_01j9a43avnfqzbjfch6pygv1td \
//		--latency 20ms \
//		--fault '{"method": "POST", "status": 503, "count": 2}'
//
// Besides the Surge API it serves a JSON admin API under /_emulator/ to list
// users and requests and to set faults; docs/testing.md describes both.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const (
	defaultAccount = "acct_01j9a43avnfqzbjfch6pygv1td"
	defaultAPIKey  = "sk_demo_emulator"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		slog.Error("surge-emulator failed", "error", err)
		os.Exit(1)
	}
}

// settings are what the flags ask for.
type settings struct {
	listen   string
	apiKeys  []string
	accounts []string
	latency  time.Duration
	pageSize int
	// offsetCursors makes list cursors offsets into the list.
	offsetCursors bool
	rateLimit     float64
	faults        []emulator.Fault
}

func parseFlags(args []string, output io.Writer) (settings, error) {
	var s settings
	flags := flag.NewFlagSet("surge-emulator", flag.ContinueOnError)
	flags.SetOutput(output)
	flags.StringVar(&s.listen, "listen", "127.0.0.1:8088", "address to serve on")
	flags.Func("api-key", "an accepted API key; repeat for several (default $SURGE_API_KEY, else "+defaultAPIKey+")", nonEmpty("API key", &s.apiKeys))
	flags.Func("account", "a known account id; repeat for several (default "+defaultAccount+")", nonEmpty("account id", &s.accounts))
	flags.DurationVar(&s.latency, "latency", 0, "delay added to every answer, such as 50ms")
	flags.IntVar(&s.pageSize, "page-size", 20, "users per page of a user list")
	flags.BoolVar(&s.offsetCursors, "offset-cursors", false, "list cursors that are offsets into the list, as Surge's opaque cursors may be: a user deleted during a walk makes it skip another")
	flags.Float64Var(&s.rateLimit, "rate-limit", 0, "requests per second accepted before answering 429 with retry-after (0: no limit)")
	flags.Func("fault", `a fault to inject at start, as the JSON of POST /_emulator/faults, such as {"status": 503, "count": 2}; repeat for several`, func(raw string) error {
		fault, err := emulator.ParseFault([]byte(raw))
		if err != nil {
			return err
		}
		s.faults = append(s.faults, fault)
		return nil
	})
	if err := flags.Parse(args); err != nil {
		return settings{}, err
	}
	if flags.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected arguments: %s", strings.Join(flags.Args(), " "))
	}
	if len(s.apiKeys) == 0 {
		s.apiKeys = []string{cmp.Or(os.Getenv("SURGE_API_KEY"), defaultAPIKey)}
	}
	if len(s.accounts) == 0 {
		s.accounts = []string{defaultAccount}
	}
	return s, nil
}

func nonEmpty(what string, into *[]string) func(string) error {
	return func(value string) error {
		if value == "" {
			return fmt.Errorf("%s is empty", what)
		}
		*into = append(*into, value)
		return nil
	}
}

// newHandler builds the emulator the settings describe, and serves its
// admin API under emulator.AdminPath and the Surge API everywhere else.
func newHandler(s settings) http.Handler {
	emu := emulator.New(emulator.Options{APIKey: s.apiKeys[0], Accounts: s.accounts, PageSize: s.pageSize})
	emu.SetOffsetCursors(s.offsetCursors)
	for _, key := range s.apiKeys[1:] {
		emu.AddProject(emulator.DefaultProject, key)
	}
	emu.SetLatency(s.latency)
	if s.rateLimit > 0 {
		emu.SetRateLimit(s.rateLimit, max(int(s.rateLimit), 1))
	}
	for _, fault := range s.faults {
		emu.InjectFault(fault)
	}
	return emulator.WithAdmin(emu, logRequests(emu))
}

func run(args []string) error {
	s, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	server := &http.Server{
		Addr:              s.listen,
		Handler:           newHandler(s),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.ListenAndServe() }()
	slog.Info("serving the Surge API emulator", "listen", s.listen, "accounts", s.accounts, "admin", emulator.AdminPath)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving on %s: %w", s.listen, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return server.Shutdown(shutdownCtx)
}

// logRequests logs one line per request. It never logs headers: the
// Authorization header carries the API key.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		recorder := &statusRecorder{ResponseWriter: w}
		defer func() {
			slog.Info("request", "method", r.Method, "path", r.URL.Path,
				"status", recorder.describe(), "duration", time.Since(start).Round(time.Microsecond))
		}()
		next.ServeHTTP(recorder, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets the emulator hijack the connection to drop a response.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) describe() string {
	if r.status == 0 {
		return "none (dropped or client gone)"
	}
	return fmt.Sprint(r.status)
}
