package keyserver

// WKDMissFloor exposes wkdMissFloor to the external tests.
const WKDMissFloor = wkdMissFloor
