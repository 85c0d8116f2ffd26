package etcdsnapshot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule says when scheduled snapshots are taken: a standard five-field
// cron expression (minute hour day-of-month month day-of-week), one of the
// shorthands @yearly, @monthly, @weekly, @daily, @hourly, or "@every D"
// (a Go duration of at least a second, counted from the server's start).
type Schedule struct {
	spec string
	// every is the interval of "@every D"; zero for a cron expression.
	every time.Duration
	// minute..dow are bit sets of the values each field allows.
	minute, hour, dom, month, dow uint64
	// domStar and dowStar: the field began with '*' (cron's rule: when
	// neither day field does, a day matching either runs).
	domStar, dowStar bool
}

// DefaultSchedule is twice a day, at midnight and noon.
const DefaultSchedule = "0 */12 * * *"

type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i's name, if any
}

var (
	minuteField = cronField{name: "minute", min: 0, max: 59}
	hourField   = cronField{name: "hour", min: 0, max: 23}
	domField    = cronField{name: "day of month", min: 1, max: 31}
	monthField  = cronField{name: "month", min: 1, max: 12,
		names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}}
	// dowField takes 0-7: 0 and 7 are both Sunday.
	dowField = cronField{name: "day of week", min: 0, max: 7,
		names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}}
)

var shorthands = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseSchedule parses a cron expression or shorthand (see Schedule).
func ParseSchedule(spec string) (Schedule, error) {
	s := Schedule{spec: spec}
	expr := strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(expr, "@every"); ok && (rest == "" || rest[0] == ' ') {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: @every needs a duration such as 30m: %w", spec, err)
		}
		if d < time.Second {
			return Schedule{}, fmt.Errorf("schedule %q: @every needs at least 1s", spec)
		}
		s.every = d
		return s, nil
	}
	if strings.HasPrefix(expr, "@") {
		full, ok := shorthands[strings.ToLower(expr)]
		if !ok {
			return Schedule{}, fmt.Errorf("schedule %q: unknown shorthand (know @yearly, @monthly, @weekly, @daily, @hourly, @every D)", spec)
		}
		expr = full
	}
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return Schedule{}, fmt.Errorf("schedule %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", spec, len(fields))
	}
	var err error
	for i, f := range []struct {
		into *uint64
		def  cronField
	}{{&s.minute, minuteField}, {&s.hour, hourField}, {&s.dom, domField}, {&s.month, monthField}, {&s.dow, dowField}} {
		if *f.into, err = f.def.parse(fields[i]); err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
		}
	}
	// Sunday is 0 and 7.
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domStar, s.dowStar = fields[2][0] == '*', fields[4][0] == '*'
	return s, nil
}

// String is the expression the schedule was parsed from.
func (s Schedule) String() string { return s.spec }

// parse reads one field: a comma-separated list of *, N, N-M, each with
// an optional /STEP (N/STEP runs from N to the field's end).
func (f cronField) parse(field string) (uint64, error) {
	var set uint64
	for item := range strings.SplitSeq(field, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("%s %q: step %q is not a positive number", f.name, item, stepText)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*":
			lo, hi = f.min, f.max
			if f.max == 7 { // day of week: * is 0-6
				hi = 6
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("%s %q: range goes backwards", f.name, item)
			}
		default:
			v, err := f.value(rng)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep {
				hi = f.max
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value reads a number or a name within the field's bounds.
func (f cronField) value(text string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(text, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a number", f.name, text)
	}
	if v < f.min || v > f.max {
		return 0, fmt.Errorf("%s %d: out of range %d-%d", f.name, v, f.min, f.max)
	}
	return v, nil
}

// errNever: no time in the next five years matches (February 30th).
var errNever = errors.New("the schedule matches no time in the next five years")

// Next is the first time after t that the schedule runs, in t's time zone;
// an error if it never does. For "@every D" it is t+D. Every step moves
// forward in absolute time, so that a wall-clock time a daylight-saving
// change skips or repeats neither stalls the search nor returns the past
// (a time in a skipped hour does not run that day; one in a repeated
// hour may run in both).
func (s Schedule) Next(t time.Time) (time.Time, error) {
	if s.every > 0 {
		return t.Add(s.every), nil
	}
	loc := t.Location()
	from := t
	// The next whole minute strictly after t (offsets are whole minutes).
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.Year() + 5
	for steps := 0; t.Year() <= limit && steps < maxSteps; steps++ {
		var next time.Time
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			next = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !s.dayMatches(t):
			next = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case s.hour&(1<<uint(t.Hour())) == 0:
			next = t.Add(time.Duration(60-t.Minute()) * time.Minute)
		case s.minute&(1<<uint(t.Minute())) == 0:
			next = t.Add(time.Minute)
		default:
			if !t.After(from) {
				return time.Time{}, fmt.Errorf("schedule %q: went back to %s from %s", s.spec, t, from)
			}
			return t, nil
		}
		if !next.After(t) {
			// A wall-clock date the zone skips or repeats: on by the hour.
			next = t.Truncate(time.Minute).Add(time.Hour - time.Duration(t.Minute())*time.Minute)
		}
		t = next
	}
	return time.Time{}, fmt.Errorf("schedule %q: %w", s.spec, errNever)
}

// maxSteps bounds Next's search (five years of hours and more).
const maxSteps = 200000

// dayMatches applies cron's day rule: both day fields must match, unless
// neither is '*', when either may.
func (s Schedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
