// Package events records Kubernetes Events about skiff objects, written as
// core/v1 Events through a controller-runtime client so that `kubectl
// describe` shows them. client-go's recorder would need a second client and
// a goroutine per component; controllers here write their few Events inline.
package events
