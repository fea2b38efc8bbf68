package octopus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// NotFoundError reports a space, project or environment that does not
// exist, or that the API key cannot see. It matches ErrNotFound with
// errors.Is.
type NotFoundError struct {
	Kind        string   // "space", "project" or "environment"
	Name        string   // the name or ID looked up
	Space       string   // the space searched; empty for a space
	Suggestions []string // up to three existing names close to Name
}

// Error names what was not found, where, and the suggestions.
func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "octopus: %s %q not found", e.Kind, e.Name)
	if e.Space != "" {
		fmt.Fprintf(&b, " in space %q", e.Space)
	}
	if len(e.Suggestions) > 0 {
		b.WriteString("; did you mean " + quoteList(e.Suggestions) + "?")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// errAmbiguous is wrapped by the error for a name that matches several
// things.
var errAmbiguous = errors.New("is ambiguous")

// candidate is something that can be looked up by ID, name or slug.
type candidate struct{ id, name, slug string }

// lookup finds arg among cands: by ID, then by exact name, then by name
// ignoring case, then by slug. Octopus names are unique within a space
// ignoring case, so the case-insensitive match is not ambiguous on a real
// server; lookup still refuses to guess if it is.
func lookup(kind, arg, space string, cands []candidate) (int, error) {
	for i, c := range cands {
		if c.id != "" && strings.EqualFold(c.id, arg) {
			return i, nil
		}
	}
	for i, c := range cands {
		if c.name == arg {
			return i, nil
		}
	}
	var folded []int
	for i, c := range cands {
		if strings.EqualFold(c.name, arg) {
			folded = append(folded, i)
		}
	}
	switch len(folded) {
	case 1:
		return folded[0], nil
	case 0:
	default:
		names := make([]string, len(folded))
		for k, i := range folded {
			names[k] = cands[i].name + " (" + cands[i].id + ")"
		}
		return -1, fmt.Errorf("octopus: %s %q %w: it matches %s; use the exact name or the ID", kind, arg, errAmbiguous, strings.Join(names, ", "))
	}
	for i, c := range cands {
		if c.slug != "" && strings.EqualFold(c.slug, arg) {
			return i, nil
		}
	}
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.name
	}
	return -1, &NotFoundError{Kind: kind, Name: arg, Space: space, Suggestions: suggest(arg, names, 3)}
}

// suggest returns up to n names close to arg: those containing it or
// contained in it (ignoring case), and those within a small edit distance,
// closest first.
func suggest(arg string, names []string, n int) []string {
	a := strings.ToLower(arg)
	limit := max(2, utf8.RuneCountInString(a)/3)
	type scored struct {
		name string
		d    int
	}
	var out []scored
	for _, name := range names {
		if name == "" || slices.ContainsFunc(out, func(s scored) bool { return s.name == name }) {
			continue
		}
		l := strings.ToLower(name)
		d := editDistance(a, l, limit+1)
		switch {
		case d <= limit:
		case a != "" && (strings.Contains(l, a) || strings.Contains(a, l)):
			d = limit + 1 // after the near misses
		default:
			continue
		}
		out = append(out, scored{name, d})
	}
	slices.SortStableFunc(out, func(x, y scored) int {
		if x.d != y.d {
			return x.d - y.d
		}
		return strings.Compare(x.name, y.name)
	})
	res := make([]string, 0, min(n, len(out)))
	for i := 0; i < len(out) && i < n; i++ {
		res = append(res, out[i].name)
	}
	return res
}

// editDistance returns the Levenshtein distance between a and b in runes,
// or limit if it is at least limit (which bounds the work for long names).
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(rb)], limit)
}

// isID reports whether s looks like an Octopus ID with the given prefix,
// such as "Projects-12", ignoring case.
func isID(s, prefix string) bool {
	if len(s) <= len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return false
	}
	for _, r := range s[len(prefix):] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	switch len(q) {
	case 0:
		return "(none)"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// resolver resolves several targets with at most one listing of projects
// and one of environments, however many targets there are.
type resolver struct {
	c     *Client
	sp    *Space
	projs []Project
	envs  []Environment
	haveP bool
	haveE bool
}

func (r *resolver) space(ctx context.Context) (*Space, error) {
	if r.sp == nil {
		sp, err := r.c.Space(ctx)
		if err != nil {
			return nil, err
		}
		r.sp = sp
	}
	return r.sp, nil
}

func (r *resolver) project(ctx context.Context, arg string) (*Project, error) {
	sp, err := r.space(ctx)
	if err != nil {
		return nil, err
	}
	if !r.haveP {
		if r.projs, err = r.c.projects(ctx, sp); err != nil {
			return nil, err
		}
		r.haveP = true
	}
	return findProject(strings.TrimSpace(arg), sp, r.projs)
}

func (r *resolver) environment(ctx context.Context, arg string) (*Environment, error) {
	sp, err := r.space(ctx)
	if err != nil {
		return nil, err
	}
	if !r.haveE {
		if r.envs, err = r.c.environments(ctx, sp); err != nil {
			return nil, err
		}
		r.haveE = true
	}
	return findEnvironment(strings.TrimSpace(arg), sp, r.envs)
}
