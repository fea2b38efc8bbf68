module github.com/pikit/pikit

go 1.24

require (
	github.com/chromedp/chromedp v0.14.2
	github.com/eclipse/paho.golang v0.22.0
	github.com/golang-jwt/jwt/v5 v5.3.0
	github.com/google/go-cmp v0.7.0
	github.com/pion/mediadevices v0.7.0
	github.com/simonvetter/modbus v1.6.4
	go.etcd.io/bbolt v1.4.3
	golang.org/x/sys v0.34.0
	periph.io/x/conn/v3 v3.7.2
	periph.io/x/devices/v3 v3.7.4
	periph.io/x/host/v3 v3.8.5
)

require (
	github.com/blackjack/webcam v0.6.1 // indirect
	github.com/chromedp/cdproto v0.0.0-20250724212937-08a3db8b4327 // indirect
	github.com/chromedp/sysutil v1.1.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20250725192818-e39067aee2d2 // indirect
	github.com/goburrow/serial v0.1.0 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.4.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/jonboulle/clockwork v0.5.0 // indirect
	golang.org/x/image v0.23.0 // indirect
	golang.org/x/net v0.31.0 // indirect
)
