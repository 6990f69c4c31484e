package emulator

import (
	"cmp"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	maxRequestBody       = 1 << 20
	defaultTokenDuration = 900
	minTokenDuration     = 15
	maxTokenDuration     = 3600
)

// response is an answer decided before anything is written, so that a
// DropResponse fault can throw it away after the change was made.
type response struct {
	status int
	body   any
	header http.Header
}

type wireError struct {
	Error wireErrorBody `json:"error"`
}

type wireErrorBody struct {
	Type    string              `json:"type"`
	Message string              `json:"message"`
	Detail  map[string][]string `json:"detail,omitempty"`
}

func apiError(status int, errorType, message string, detail map[string][]string) response {
	return response{
		status: status,
		body:   wireError{Error: wireErrorBody{Type: errorType, Message: message, Detail: detail}},
		header: http.Header{},
	}
}

func ok(status int, body any) response {
	return response{status: status, body: body, header: http.Header{}}
}

func notFound(message string) response {
	return apiError(http.StatusNotFound, "not_found", message, nil)
}

// wireUser is the end user object of the API. Empty optional fields are
// null, as in Surge's generated SDK types.
type wireUser struct {
	ID        string            `json:"id"`
	FirstName string            `json:"first_name"`
	LastName  *string           `json:"last_name"`
	Metadata  map[string]string `json:"metadata"`
	PhotoURL  *string           `json:"photo_url"`
}

func toWire(u User) wireUser {
	metadata := u.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	return wireUser{ID: u.ID, FirstName: u.FirstName, LastName: nullable(u.LastName), Metadata: metadata, PhotoURL: nullable(u.PhotoURL)}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type userInput struct {
	FirstName *string           `json:"first_name"`
	LastName  *string           `json:"last_name"`
	Metadata  map[string]string `json:"metadata"`
	PhotoURL  *string           `json:"photo_url"`
}

type tokenInput struct {
	DurationSeconds *json.Number `json:"duration_seconds"`
}

type listPage struct {
	Data       []wireUser `json:"data"`
	Pagination pagination `json:"pagination"`
}

type pagination struct {
	NextCursor     *string `json:"next_cursor"`
	PreviousCursor *string `json:"previous_cursor"`
}

// ServeHTTP answers one request of the Surge API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	entry, fault, delay := s.admit(r)
	// Like a real server, the emulator finishes what it started: a request
	// whose client gave up during the delay is still carried out, late, and
	// its answer goes nowhere.
	time.Sleep(delay)
	if fault != nil && fault.Status != 0 {
		s.write(w, entry, faultResponse(fault))
		return
	}
	resp := s.process(r)
	if fault != nil && fault.DropResponse {
		s.drop(w, entry, resp.status)
		return
	}
	s.write(w, entry, resp)
}

func (s *Server) write(w http.ResponseWriter, entry *Request, resp response) {
	s.finish(entry, resp.status, false)
	for name, values := range resp.header {
		w.Header()[name] = values
	}
	if page, isHTML := resp.body.(htmlBody); isHTML {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(resp.status)
		_, _ = io.WriteString(w, string(page))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.status)
	encoder := json.NewEncoder(w)
	encoder.SetEscapeHTML(false)
	_ = encoder.Encode(resp.body) // the client may be gone; nothing to do then
}

func (s *Server) drop(w http.ResponseWriter, entry *Request, status int) {
	s.finish(entry, status, true)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// A server that cannot hand over its connection (HTTP/2) still
		// aborts the exchange without answering.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func (s *Server) process(r *http.Request) response {
	if resp, limited := s.rateLimited(); limited {
		return resp
	}
	project, resp, authenticated := s.authenticate(r)
	if !authenticated {
		return resp
	}
	return s.route(project, r)
}

// authenticate returns the project whose key the request carries.
func (s *Server) authenticate(r *http.Request) (string, response, bool) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return "", apiError(http.StatusUnauthorized, "missing_api_key", "No API key provided. Send it as Authorization: Bearer <key>", nil), false
	}
	key, bearer := strings.CutPrefix(header, "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if bearer {
		for known, project := range s.projects {
			if subtle.ConstantTimeCompare([]byte(key), []byte(known)) == 1 {
				return project, response{}, true
			}
		}
	}
	return "", apiError(http.StatusUnauthorized, "invalid_api_key", "The API key provided is invalid", nil), false
}

func (s *Server) route(project string, r *http.Request) response {
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segments) == 3 && segments[0] == "accounts" && segments[2] == "users":
		switch r.Method {
		case http.MethodPost:
			return s.createUser(project, segments[1], r)
		case http.MethodGet:
			return s.listUsers(project, segments[1], r.URL.Query())
		}
	case len(segments) == 2 && segments[0] == "users":
		switch r.Method {
		case http.MethodGet:
			return s.getUser(project, segments[1])
		case http.MethodPatch:
			return s.updateUser(project, segments[1], r)
		case http.MethodDelete:
			return s.deleteUser(project, segments[1])
		}
	case len(segments) == 3 && segments[0] == "users" && segments[2] == "tokens" && r.Method == http.MethodPost:
		return s.createToken(project, segments[1], r)
	}
	return notFound(fmt.Sprintf("No route for %s %s", r.Method, r.URL.Path))
}

func (s *Server) createUser(project, accountID string, r *http.Request) response {
	var in userInput
	decodeErr := decodeBody(r, &in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[accountID] != project {
		return accountNotFound(accountID)
	}
	if decodeErr != nil {
		return *decodeErr
	}
	if invalid := validateUser(in); invalid != nil {
		return *invalid
	}
	u := userFromInput(in)
	u.ID = newID("usr_", s.now())
	u.AccountID = accountID
	s.storeLocked(u)
	return ok(http.StatusCreated, toWire(u))
}

func (s *Server) getUser(project, id string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, found := s.userOfLocked(project, id)
	if !found {
		return userNotFound(id)
	}
	return ok(http.StatusOK, toWire(stored.user))
}

// updateUser replaces the whole state with the body: a field left out is
// cleared. Surge does not document this either way, and the client always
// sends the whole state, so the stricter reading catches a client that does
// not.
func (s *Server) updateUser(project, id string, r *http.Request) response {
	var in userInput
	decodeErr := decodeBody(r, &in)
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, found := s.userOfLocked(project, id)
	if !found {
		return userNotFound(id)
	}
	if decodeErr != nil {
		return *decodeErr
	}
	if invalid := validateUser(in); invalid != nil {
		return *invalid
	}
	updated := userFromInput(in)
	updated.ID, updated.AccountID = stored.user.ID, stored.user.AccountID
	stored.user = updated
	return ok(http.StatusOK, toWire(updated))
}

func (s *Server) deleteUser(project, id string) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, found := s.userOfLocked(project, id)
	if !found {
		return userNotFound(id)
	}
	delete(s.users, id)
	return ok(http.StatusOK, toWire(stored.user))
}

func (s *Server) listUsers(project, accountID string, query url.Values) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[accountID] != project {
		return accountNotFound(accountID)
	}
	var users []*storedUser
	for _, stored := range s.sortedUsersLocked() {
		if stored.user.AccountID == accountID {
			users = append(users, stored)
		}
	}

	after, before := query.Get("after"), query.Get("before")
	if after != "" && before != "" {
		return apiError(http.StatusUnprocessableEntity, "invalid_pagination", "Use either after or before, not both", nil)
	}
	if s.offsetCursors {
		return s.offsetPage(users, after, before)
	}
	var page []*storedUser
	switch {
	case after != "":
		seq, valid := decodeCursor(after)
		if !valid {
			return invalidCursor("after")
		}
		start, _ := slices.BinarySearchFunc(users, seq+1, bySeq)
		page = users[start:min(start+s.pageSize, len(users))]
	case before != "":
		seq, valid := decodeCursor(before)
		if !valid {
			return invalidCursor("before")
		}
		end, _ := slices.BinarySearchFunc(users, seq, bySeq)
		page = users[max(end-s.pageSize, 0):end]
	default:
		page = users[:min(s.pageSize, len(users))]
	}

	body := listPage{Data: make([]wireUser, 0, len(page))}
	for _, stored := range page {
		body.Data = append(body.Data, toWire(stored.user))
	}
	if len(page) > 0 {
		first, last := page[0], page[len(page)-1]
		if first != users[0] {
			body.Pagination.PreviousCursor = encodeCursor(first.seq)
		}
		if last != users[len(users)-1] {
			body.Pagination.NextCursor = encodeCursor(last.seq)
		}
	}
	return ok(http.StatusOK, body)
}

// offsetPage is a page of users whose cursors are offsets into the list.
func (s *Server) offsetPage(users []*storedUser, after, before string) response {
	start, end := 0, min(s.pageSize, len(users))
	switch {
	case after != "":
		offset, valid := decodeCursor(after)
		if !valid {
			return invalidCursor("after")
		}
		start = int(min(offset, uint64(len(users))))
		end = min(start+s.pageSize, len(users))
	case before != "":
		offset, valid := decodeCursor(before)
		if !valid {
			return invalidCursor("before")
		}
		end = int(min(offset, uint64(len(users))))
		start = max(end-s.pageSize, 0)
	}
	body := listPage{Data: make([]wireUser, 0, end-start)}
	for _, stored := range users[start:end] {
		body.Data = append(body.Data, toWire(stored.user))
	}
	if start > 0 {
		body.Pagination.PreviousCursor = encodeCursor(uint64(start))
	}
	if end < len(users) {
		body.Pagination.NextCursor = encodeCursor(uint64(end))
	}
	return ok(http.StatusOK, body)
}

func bySeq(u *storedUser, seq uint64) int {
	return cmp.Compare(u.seq, seq)
}

const cursorPrefix = "cur_"

func encodeCursor(seq uint64) *string {
	cursor := cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(seq, 10)))
	return &cursor
}

func decodeCursor(cursor string) (uint64, bool) {
	encoded, found := strings.CutPrefix(cursor, cursorPrefix)
	if !found {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(raw), 10, 64)
	return seq, err == nil
}

func invalidCursor(param string) response {
	return apiError(http.StatusUnprocessableEntity, "invalid_pagination", fmt.Sprintf("%s is not a valid cursor", param),
		map[string][]string{param: {"is not a valid cursor"}})
}

func (s *Server) createToken(project, userID string, r *http.Request) response {
	var in tokenInput
	decodeErr := decodeBody(r, &in)
	s.mu.Lock()
	_, found := s.userOfLocked(project, userID)
	s.mu.Unlock()
	if !found {
		return userNotFound(userID)
	}
	if decodeErr != nil {
		return *decodeErr
	}
	duration := defaultTokenDuration
	if in.DurationSeconds != nil {
		n, err := strconv.Atoi(in.DurationSeconds.String())
		if err != nil || n < minTokenDuration || n > maxTokenDuration {
			message := fmt.Sprintf("must be an integer from %d to %d", minTokenDuration, maxTokenDuration)
			return apiError(http.StatusUnprocessableEntity, "validation_error", "duration_seconds "+message,
				map[string][]string{"duration_seconds": {message}})
		}
		duration = n
	}
	token := s.signToken(userID, s.now(), time.Duration(duration)*time.Second)
	return ok(http.StatusCreated, map[string]string{"token": token})
}

func (s *Server) signToken(userID string, now time.Time, ttl time.Duration) string {
	header, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{Alg: "EdDSA", Kid: s.keyID, Typ: "JWT"})
	claims, _ := json.Marshal(struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
		Iat int64  `json:"iat"`
	}{Sub: userID, Exp: now.Add(ttl).Unix(), Iat: now.Unix()})
	signingInput := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	signature := ed25519.Sign(s.signingKey, []byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(signature)
}

// userOfLocked finds a user that the project's key can reach: a user of
// another project's account does not exist for it.
func (s *Server) userOfLocked(project, id string) (*storedUser, bool) {
	stored, found := s.users[id]
	if !found || s.accounts[stored.user.AccountID] != project {
		return nil, false
	}
	return stored, true
}

func accountNotFound(id string) response {
	return apiError(http.StatusNotFound, "account_not_found", fmt.Sprintf("No account %s", id), nil)
}

func userNotFound(id string) response {
	return notFound(fmt.Sprintf("No user %s", id))
}

// decodeBody reads a JSON object. Broken JSON is a 400 bad_request; a field
// of the wrong type is a 422 validation_error naming it.
func decodeBody(r *http.Request, into any) *response {
	decoder := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	err := decoder.Decode(into)
	if err == nil && decoder.More() {
		err = errors.New("unexpected data after the JSON object")
	}
	if err == nil {
		return nil
	}
	if typeErr, isTypeErr := errors.AsType[*json.UnmarshalTypeError](err); isTypeErr && typeErr.Field != "" {
		resp := apiError(http.StatusUnprocessableEntity, "validation_error", typeErr.Field+" is invalid",
			map[string][]string{typeErr.Field: {"is invalid"}})
		return &resp
	}
	message := "The request body is not a valid JSON object"
	if errors.Is(err, io.EOF) {
		message = "The request body is empty; send a JSON object"
	}
	resp := apiError(http.StatusBadRequest, "bad_request", message, nil)
	return &resp
}

func validateUser(in userInput) *response {
	detail := map[string][]string{}
	if in.FirstName == nil || strings.TrimSpace(*in.FirstName) == "" {
		detail["first_name"] = []string{"can't be blank"}
	}
	if in.PhotoURL != nil && !isHTTPURL(*in.PhotoURL) {
		detail["photo_url"] = []string{"must be an absolute http or https URL"}
	}
	if len(detail) == 0 {
		return nil
	}
	var problems []string
	for _, field := range slices.Sorted(maps.Keys(detail)) {
		problems = append(problems, field+" "+strings.Join(detail[field], ", "))
	}
	resp := apiError(http.StatusUnprocessableEntity, "validation_error", strings.Join(problems, "; "), detail)
	return &resp
}

func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func userFromInput(in userInput) User {
	u := User{FirstName: *in.FirstName, Metadata: in.Metadata}
	if in.LastName != nil {
		u.LastName = *in.LastName
	}
	if in.PhotoURL != nil {
		u.PhotoURL = *in.PhotoURL
	}
	return u.clone()
}
