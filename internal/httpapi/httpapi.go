// Package httpapi holds what the pikit programs' JSON-only HTTP servers
// (the build lamp's status and webhooks, the gateway's REST API) share.
package httpapi

import "net/http"

// SecurityHeaders sets the headers a JSON API without pages wants on every
// response: nothing may be framed, sniffed, cached or loaded from it.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
