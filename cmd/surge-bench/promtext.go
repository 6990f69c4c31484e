package main

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the samples of the named metrics from the Prometheus
// text format. It is a small reader of the format's sample lines, enough for
// the API server's and the manager's endpoints, so that the bench needs no
// dependency the operator does not have.
func parseMetrics(raw []byte, names ...string) []sample {
	var samples []sample
	scanner := bufio.NewScanner(bytes.NewReader(raw))
	scanner.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		nameEnd := strings.IndexAny(line, "{ ")
		if nameEnd < 0 || !slices.Contains(names, line[:nameEnd]) {
			continue
		}
		s := sample{name: line[:nameEnd], labels: map[string]string{}}
		rest := line[nameEnd:]
		if rest[0] == '{' {
			var ok bool
			if rest, ok = parseLabels(rest[1:], s.labels); !ok {
				continue
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		value, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		s.value = value
		samples = append(samples, s)
	}
	return samples
}

// parseLabels reads `name="value",...}` into labels and returns what follows
// the closing brace.
func parseLabels(s string, labels map[string]string) (string, bool) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], true
		}
		eq := strings.Index(s, `="`)
		if eq < 0 {
			return "", false
		}
		name := s[:eq]
		s = s[eq+2:]
		var value strings.Builder
		closed := false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s):
				i++
				if s[i] == 'n' {
					value.WriteByte('\n')
				} else {
					value.WriteByte(s[i])
				}
			case c == '"':
				s, closed = s[i+1:], true
			default:
				value.WriteByte(c)
			}
			if closed {
				break
			}
		}
		if !closed {
			return "", false
		}
		labels[name] = value.String()
	}
}

// sumSamples adds up the samples whose labels include match.
func sumSamples(samples []sample, name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range samples {
		if s.name != name {
			continue
		}
		matches := true
		for k, v := range match {
			if s.labels[k] != v {
				matches = false
				break
			}
		}
		if matches {
			total += s.value
		}
	}
	return total
}
