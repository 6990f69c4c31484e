// Command surge-emulator serves an emulated Surge API, to run the operator
// locally or in an end-to-end test without reaching Surge.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/surge-operator/surge-operator/internal/surge/emulator"
)

const defaultAccount = "acct_01j9a43avnfqzbjfch6pygv1td"

func main() {
	if err := run(); err != nil {
		slog.Error("surge-emulator failed", "error", err)
		os.Exit(1)
	}
}

func run() error {
	defaultKey := os.Getenv("SURGE_API_KEY")
	if defaultKey == "" {
		defaultKey = "sk_demo_emulator"
	}
	listen := flag.String("listen", "127.0.0.1:8088", "address to serve the API on")
	apiKey := flag.String("api-key", defaultKey, "the only API key accepted (default from SURGE_API_KEY)")
	latency := flag.Duration("latency", 0, "delay added to every answer")
	var accounts []string
	flag.Func("account", "a known account id; repeat for several (default "+defaultAccount+")", func(id string) error {
		if id == "" {
			return errors.New("account id is empty")
		}
		accounts = append(accounts, id)
		return nil
	})
	flag.Parse()
	if len(accounts) == 0 {
		accounts = []string{defaultAccount}
	}

	emu := emulator.New(emulator.Options{APIKey: *apiKey, Accounts: accounts})
	emu.SetLatency(*latency)
	server := &http.Server{
		Addr:              *listen,
		Handler:           logRequests(emu),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.ListenAndServe() }()
	slog.Info("serving the Surge API emulator", "listen", *listen, "accounts", accounts)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving on %s: %w", *listen, err)
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
