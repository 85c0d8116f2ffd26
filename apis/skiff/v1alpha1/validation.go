package v1alpha1

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Lengths of the parts of a generated Instance name,
// <workload>-<revision>-<suffix>.
const (
	instanceRevisionLength = 10
	instanceSuffixLength   = 5
	// MaxWorkloadNameLength keeps generated Instance names within a DNS
	// label: 63 - len("-") - 10 - len("-") - 5.
	MaxWorkloadNameLength = validation.DNS1123LabelMaxLength - 1 - instanceRevisionLength - 1 - instanceSuffixLength
)

// ValidateWorkload checks a Workload on create: metadata, selector,
// template and rollout strategy.
func ValidateWorkload(w *Workload) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&w.ObjectMeta, true, validateWorkloadName, field.NewPath("metadata"))
	return append(allErrs, validateWorkloadSpec(&w.Spec, field.NewPath("spec"))...)
}

// ValidateWorkloadUpdate checks a Workload update: everything ValidateWorkload
// checks, plus an unchanged selector (changing it would orphan the Instances
// the Workload owns).
func ValidateWorkloadUpdate(newW, oldW *Workload) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newW.ObjectMeta, &oldW.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateWorkload(newW)...)
	if !apiequality.Semantic.DeepEqual(newW.Spec.Selector, oldW.Spec.Selector) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("spec", "selector"), newW.Spec.Selector, "field is immutable"))
	}
	return allErrs
}

// ValidateWorkloadStatusUpdate checks a write to a Workload's status
// subresource: metadata, non-negative counts, and well-formed conditions.
func ValidateWorkloadStatusUpdate(newW, oldW *Workload) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMetaUpdate(&newW.ObjectMeta, &oldW.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateWorkloadStatus(&newW.Status, field.NewPath("status"))...)
}

// validateWorkloadName is a DNS label short enough that the names of the
// Instances generated from it are DNS labels too.
func validateWorkloadName(name string, prefix bool) []string {
	errs := apivalidation.NameIsDNSLabel(name, prefix)
	if !prefix && len(name) > MaxWorkloadNameLength {
		errs = append(errs, fmt.Sprintf("must be no more than %d characters, so that Instance names "+
			"(<workload>-<%d-character revision>-<%d-character suffix>) stay DNS labels",
			MaxWorkloadNameLength, instanceRevisionLength, instanceSuffixLength))
	}
	return errs
}

func validateWorkloadSpec(spec *WorkloadSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.Replicas == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("replicas"), "replicas is required (it defaults to 1)"))
	} else {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.Replicas), fldPath.Child("replicas"))...)
	}
	templatePath := fldPath.Child("template")
	allErrs = append(allErrs, validateWorkloadSelector(spec.Selector, spec.Template.Metadata.Labels, fldPath.Child("selector"), templatePath.Child("metadata", "labels"))...)
	allErrs = append(allErrs, validateTemplateMetadata(&spec.Template.Metadata, templatePath.Child("metadata"))...)
	allErrs = append(allErrs, ValidateInstanceTemplateSpec(&spec.Template.Spec, templatePath.Child("spec"))...)
	allErrs = append(allErrs, validateStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	if d := spec.ProgressDeadlineSeconds; d != nil && *d <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *d, "must be greater than 0"))
	}
	if spec.MinReadySeconds < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("minReadySeconds"), spec.MinReadySeconds, "must be greater than or equal to 0"))
	}
	return allErrs
}

// validateWorkloadSelector requires a valid, non-empty selector that
// matches the template: otherwise the Workload would not own the Instances
// it creates and would create more forever.
func validateWorkloadSelector(sel *metav1.LabelSelector, templateLabels map[string]string, fldPath, labelsPath *field.Path) field.ErrorList {
	if sel == nil {
		return field.ErrorList{field.Required(fldPath, "a selector is required (it defaults to the template's labels when they are set)")}
	}
	allErrs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, fldPath)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return append(allErrs, field.Invalid(fldPath, sel, "empty selector is invalid for a workload: it would select every Instance in the namespace"))
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		// ValidateLabelSelector has already said what is wrong with it.
		return allErrs
	}
	if !selector.Matches(labels.Set(templateLabels)) {
		allErrs = append(allErrs, field.Invalid(labelsPath, templateLabels, "`selector` does not match template `labels`"))
	}
	return allErrs
}

func validateTemplateMetadata(m *TemplateMetadata, fldPath *field.Path) field.ErrorList {
	allErrs := metav1validation.ValidateLabels(m.Labels, fldPath.Child("labels"))
	return append(allErrs, apivalidation.ValidateAnnotations(m.Annotations, fldPath.Child("annotations"))...)
}

func validateStrategy(s *WorkloadStrategy, fldPath *field.Path) field.ErrorList {
	typePath := fldPath.Child("type")
	switch s.Type {
	case RollingUpdateStrategy:
		return validateRollingUpdate(s.RollingUpdate, fldPath.Child("rollingUpdate"))
	case RecreateStrategy:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
		return nil
	case "":
		return field.ErrorList{field.Required(typePath, "strategy type is required (it defaults to RollingUpdate)")}
	default:
		return field.ErrorList{field.NotSupported(typePath, s.Type, []WorkloadStrategyType{RollingUpdateStrategy, RecreateStrategy})}
	}
}

// validateRollingUpdate checks the rollout bounds. Both zero would let the
// rollout neither add a new Instance nor remove an old one: it would stall.
func validateRollingUpdate(ru *RollingUpdate, fldPath *field.Path) field.ErrorList {
	if ru == nil {
		return nil
	}
	surgePath, unavailablePath := fldPath.Child("maxSurge"), fldPath.Child("maxUnavailable")
	allErrs := validateIntOrPercent(ru.MaxSurge, surgePath)
	allErrs = append(allErrs, validateIntOrPercent(ru.MaxUnavailable, unavailablePath)...)
	if isPercentAbove100(ru.MaxUnavailable) {
		allErrs = append(allErrs, field.Invalid(unavailablePath, ru.MaxUnavailable.String(), "must not be greater than 100%"))
	}
	if isZeroIntOrPercent(ru.MaxSurge) && isZeroIntOrPercent(ru.MaxUnavailable) {
		allErrs = append(allErrs, field.Invalid(unavailablePath, ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0: the rollout could make no progress"))
	}
	return allErrs
}

// validateIntOrPercent accepts a non-negative integer or a non-negative
// percentage such as "25%".
func validateIntOrPercent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.String {
		if _, ok := percentValue(v); !ok {
			return field.ErrorList{field.Invalid(fldPath, v.StrVal, "must be an integer or a percentage (e.g. '25%')")}
		}
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(v.IntValue()), fldPath)
}

// percentValue parses "N%" into N; validation.IsValidPercent admits only
// digits before the sign, so N is never negative.
func percentValue(v *intstr.IntOrString) (int, bool) {
	if v == nil || v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
	return n, err == nil
}

func isPercentAbove100(v *intstr.IntOrString) bool {
	n, ok := percentValue(v)
	return ok && n > 100
}

// isZeroIntOrPercent is true for 0 and "0%"; an unset bound is not zero,
// since defaulting sets it to 25%.
func isZeroIntOrPercent(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	n, ok := percentValue(v)
	return ok && n == 0
}

// namedCount is a status count and its field name.
//
// +k8s:openapi-gen=false
// +k8s:deepcopy-gen=false
type namedCount struct {
	name  string
	value int64
}

// validateCounts requires every count to be non-negative.
func validateCounts(counts []namedCount, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, c := range counts {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(c.value, fldPath.Child(c.name))...)
	}
	return allErrs
}

func validateWorkloadStatus(s *WorkloadStatus, fldPath *field.Path) field.ErrorList {
	allErrs := validateCounts([]namedCount{
		{"observedGeneration", s.ObservedGeneration},
		{"replicas", int64(s.Replicas)},
		{"readyReplicas", int64(s.ReadyReplicas)},
		{"updatedReplicas", int64(s.UpdatedReplicas)},
		{"availableReplicas", int64(s.AvailableReplicas)},
	}, fldPath)
	allErrs = append(allErrs, metav1validation.ValidateConditions(s.Conditions, fldPath.Child("conditions"))...)
	return append(allErrs, validateWorkloadPlan(s.Plan, fldPath.Child("plan"))...)
}

func validateWorkloadPlan(p *WorkloadPlan, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	allErrs := validateCounts([]namedCount{
		{"observedGeneration", p.ObservedGeneration},
		{"creates", int64(p.Creates)},
		{"deletes", int64(p.Deletes)},
		{"replaces", int64(p.Replaces)},
		{"unchanged", int64(p.Unchanged)},
		{"magnitude", int64(p.Magnitude)},
	}, fldPath)
	urgencies := []Urgency{UrgencyCritical, UrgencyHigh, UrgencyMedium, UrgencyLow, UrgencyNone}
	return append(allErrs, validateOptionalEnum(p.Urgency, urgencies, fldPath.Child("urgency"))...)
}

// validateResourceQuantities checks that every name in a resource list is a
// qualified name and every quantity is non-negative: a negative capacity or
// request would corrupt the scheduler's arithmetic.
func validateResourceQuantities(list corev1.ResourceList, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, name := range sortedResourceNames(list) {
		keyPath := fldPath.Key(string(name))
		for _, msg := range validation.IsQualifiedName(string(name)) {
			allErrs = append(allErrs, field.Invalid(keyPath, name, "resource name: "+msg))
		}
		if q := list[name]; q.Sign() < 0 {
			allErrs = append(allErrs, field.Invalid(keyPath, q.String(), "must be greater than or equal to 0"))
		} else if q.Cmp(maxQuantity) > 0 {
			// The scheduler and the agent count in int64 milli-units: a
			// larger value would wrap, or read as no limit at all.
			allErrs = append(allErrs, field.Invalid(keyPath, q.String(), "must be at most "+maxQuantity.String()))
		}
	}
	return allErrs
}

// maxQuantity is the largest quantity an int64 of milli-units holds.
var maxQuantity = *resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)

// sortedResourceNames orders a list's names so that errors come out in the
// same order every time.
func sortedResourceNames(list corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(list))
	for name := range list {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// validateTaintEffect accepts the three taint effects.
func validateTaintEffect(effect TaintEffect, fldPath *field.Path) field.ErrorList {
	effects := []TaintEffect{TaintEffectNoSchedule, TaintEffectPreferNoSchedule, TaintEffectNoExecute}
	if !slices.Contains(effects, effect) {
		return field.ErrorList{field.NotSupported(fldPath, effect, effects)}
	}
	return nil
}

// validateOptionalEnum accepts an empty value or one of valid. Status
// fields use it: an observer may not have decided on a value yet.
func validateOptionalEnum[T ~string](value T, valid []T, fldPath *field.Path) field.ErrorList {
	if value != "" && !slices.Contains(valid, value) {
		return field.ErrorList{field.NotSupported(fldPath, value, valid)}
	}
	return nil
}
