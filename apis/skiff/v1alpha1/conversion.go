package v1alpha1

import (
	"fmt"
	"net/url"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
)

// addConversionFuncs registers how query parameters become options
// objects, so the apiserver can decode a log request's query.
func addConversionFuncs(s *runtime.Scheme) error {
	return s.AddConversionFunc((*url.Values)(nil), (*InstanceLogOptions)(nil), func(a, b interface{}, _ conversion.Scope) error {
		return InstanceLogOptionsFromQuery(*a.(*url.Values), b.(*InstanceLogOptions))
	})
}

// InstanceLogOptionsFromQuery fills out from a log request's query; a bad
// value is an error naming its parameter.
func InstanceLogOptionsFromQuery(q url.Values, out *InstanceLogOptions) error {
	out.Container = q.Get("container")
	var err error
	if out.Follow, err = boolParam(q, "follow"); err != nil {
		return err
	}
	if out.Previous, err = boolParam(q, "previous"); err != nil {
		return err
	}
	if out.Timestamps, err = boolParam(q, "timestamps"); err != nil {
		return err
	}
	for name, dst := range map[string]**int64{"sinceSeconds": &out.SinceSeconds, "tailLines": &out.TailLines, "limitBytes": &out.LimitBytes} {
		if !q.Has(name) {
			*dst = nil
			continue
		}
		v, err := strconv.ParseInt(q.Get(name), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", name, q.Get(name))
		}
		*dst = &v
	}
	out.SinceTime = nil
	if q.Has("sinceTime") {
		var t metav1.Time
		if err := t.UnmarshalQueryParameter(q.Get("sinceTime")); err != nil {
			return fmt.Errorf("sinceTime: %q is not an RFC 3339 time", q.Get("sinceTime"))
		}
		out.SinceTime = &t
	}
	return nil
}

// Query is the inverse of InstanceLogOptionsFromQuery.
func (o *InstanceLogOptions) Query() url.Values {
	q := url.Values{}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	for name, v := range map[string]bool{"follow": o.Follow, "previous": o.Previous, "timestamps": o.Timestamps} {
		if v {
			q.Set(name, "true")
		}
	}
	for name, v := range map[string]*int64{"sinceSeconds": o.SinceSeconds, "tailLines": o.TailLines, "limitBytes": o.LimitBytes} {
		if v != nil {
			q.Set(name, strconv.FormatInt(*v, 10))
		}
	}
	if o.SinceTime != nil {
		q.Set("sinceTime", o.SinceTime.UTC().Format("2006-01-02T15:04:05Z07:00"))
	}
	return q
}

func boolParam(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	v := q.Get(name)
	if v == "" {
		return true, nil // ?follow means follow=true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not a boolean", name, v)
	}
	return b, nil
}
