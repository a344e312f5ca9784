// Package queue is sealmail's outbound queue and delivery engine: mail
// that local users submit for remote recipients waits here, sealed under
// the server's queue key, until a remote server accepts it or it bounces.
package queue
