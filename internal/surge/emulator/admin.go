package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AdminPath prefixes the admin endpoints, outside every path of the Surge
// API so that no client of the API can reach them by accident.
const AdminPath = "/_emulator/"

// adminFault is a Fault as JSON, with durations in milliseconds, for
// teams that drive the emulator from other languages.
type adminFault struct {
	Method       string  `json:"method,omitempty"`
	PathPrefix   string  `json:"path_prefix,omitempty"`
	Status       int     `json:"status,omitempty"`
	ErrorType    string  `json:"error_type,omitempty"`
	RetryAfterMS int64   `json:"retry_after_ms,omitempty"`
	LatencyMS    int64   `json:"latency_ms,omitempty"`
	DropResponse bool    `json:"drop_response,omitempty"`
	Count        int     `json:"count,omitempty"`
	Probability  float64 `json:"probability,omitempty"`
}

// ParseFault reads a fault from its JSON form, the body of POST
// /_emulator/faults: {"method": "POST", "path_prefix": "/accounts/",
// "status": 503, "error_type": "…", "retry_after_ms": 2000,
// "latency_ms": 250, "drop_response": true, "count": 3,
// "probability": 0.5}, every field optional. Unknown fields are refused, so
// that a misspelt one does not silently inject a different fault.
func ParseFault(data []byte) (Fault, error) {
	var in adminFault
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&in); err != nil {
		return Fault{}, fmt.Errorf("not a fault: %w", err)
	}
	switch {
	case in.Status != 0 && (in.Status < 100 || in.Status > 599):
		return Fault{}, fmt.Errorf("status %d is not an HTTP status", in.Status)
	case in.Count < 0:
		return Fault{}, fmt.Errorf("count %d is negative", in.Count)
	case in.Probability < 0 || in.Probability > 1:
		return Fault{}, fmt.Errorf("probability %g is not between 0 and 1", in.Probability)
	case in.RetryAfterMS < 0 || in.LatencyMS < 0:
		return Fault{}, fmt.Errorf("retry_after_ms and latency_ms cannot be negative")
	}
	return Fault{
		Method:       in.Method,
		PathPrefix:   in.PathPrefix,
		Status:       in.Status,
		ErrorType:    in.ErrorType,
		RetryAfter:   time.Duration(in.RetryAfterMS) * time.Millisecond,
		Latency:      time.Duration(in.LatencyMS) * time.Millisecond,
		DropResponse: in.DropResponse,
		Count:        in.Count,
		Probability:  in.Probability,
	}, nil
}

type adminUser struct {
	wireUser
	AccountID string `json:"account_id"`
}

type adminRequest struct {
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Status  int       `json:"status"`
	Dropped bool      `json:"dropped"`
	At      time.Time `json:"at"`
}

type adminList[T any] struct {
	Data []T `json:"data"`
}

// AdminHandler serves the admin endpoints under AdminPath, to inspect the
// emulator and change its behaviour while it runs:
//
//	GET    /_emulator/users[?account_id=acct_…]  the users, oldest first
//	GET    /_emulator/requests                   the request log, in order of arrival
//	DELETE /_emulator/requests                   forget the request log
//	POST   /_emulator/faults                     inject a fault (see ParseFault)
//	DELETE /_emulator/faults                     remove every fault
//	POST   /_emulator/accounts                   {"id": "acct_…"}: make an account known
//	POST   /_emulator/reset                      forget every user, fault and request
//
// It asks for no key: it is for a test's own emulator, never one reachable
// by others.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := strings.TrimPrefix(r.URL.Path, AdminPath)
		switch {
		case route == "users" && r.Method == http.MethodGet:
			s.adminUsers(w, r.URL.Query().Get("account_id"))
		case route == "requests" && r.Method == http.MethodGet:
			s.adminRequests(w)
		case route == "requests" && r.Method == http.MethodDelete:
			s.ResetRequests()
			w.WriteHeader(http.StatusNoContent)
		case route == "faults" && r.Method == http.MethodPost:
			s.adminInjectFault(w, r)
		case route == "faults" && r.Method == http.MethodDelete:
			s.ClearFaults()
			w.WriteHeader(http.StatusNoContent)
		case route == "accounts" && r.Method == http.MethodPost:
			s.adminAddAccount(w, r)
		case route == "reset" && r.Method == http.MethodPost:
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, apiError(http.StatusNotFound, "not_found", fmt.Sprintf("No admin route for %s %s", r.Method, r.URL.Path), nil))
		}
	})
}

func (s *Server) adminUsers(w http.ResponseWriter, accountID string) {
	users := s.AllUsers()
	if accountID != "" {
		users = s.Users(accountID)
	}
	body := adminList[adminUser]{Data: make([]adminUser, 0, len(users))}
	for _, u := range users {
		body.Data = append(body.Data, adminUser{wireUser: toWire(u), AccountID: u.AccountID})
	}
	writeJSON(w, ok(http.StatusOK, body))
}

func (s *Server) adminRequests(w http.ResponseWriter) {
	requests := s.Requests()
	body := adminList[adminRequest]{Data: make([]adminRequest, 0, len(requests))}
	for _, r := range requests {
		body.Data = append(body.Data, adminRequest(r))
	}
	writeJSON(w, ok(http.StatusOK, body))
}

func (s *Server) adminInjectFault(w http.ResponseWriter, r *http.Request) {
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(http.MaxBytesReader(w, r.Body, maxRequestBody)); err != nil {
		writeJSON(w, apiError(http.StatusBadRequest, "bad_request", err.Error(), nil))
		return
	}
	fault, err := ParseFault(raw.Bytes())
	if err != nil {
		writeJSON(w, apiError(http.StatusBadRequest, "bad_request", err.Error(), nil))
		return
	}
	s.InjectFault(fault)
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) adminAddAccount(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(&in); err != nil || in.ID == "" {
		writeJSON(w, apiError(http.StatusBadRequest, "bad_request", `send {"id": "acct_…"}`, nil))
		return
	}
	s.AddAccount(in.ID)
	w.WriteHeader(http.StatusCreated)
}

func writeJSON(w http.ResponseWriter, resp response) {
	for name, values := range resp.header {
		w.Header()[name] = values
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.status)
	_ = json.NewEncoder(w).Encode(resp.body) // the client may be gone; nothing to do then
}

// WithAdmin serves the admin endpoints of s under AdminPath, and api, which
// serves s's Surge API (perhaps wrapped, to log), everywhere else.
func WithAdmin(s *Server, api http.Handler) http.Handler {
	admin := s.AdminHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, AdminPath) {
			admin.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
