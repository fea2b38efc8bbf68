package main

import (
	"context"
	"fmt"

	"github.com/pikit/pikit/energy/sink"
	"github.com/pikit/pikit/energy/store"
)

// newMQTT builds the MQTT sink: QoS 1, a delivery counts only once the
// broker acknowledged every message. It connects in the background until
// ctx is done.
func (g *gateway) newMQTT(ctx context.Context, s Settings) (*sink.MQTT, error) {
	opts := sink.MQTTOptions{
		URL:       s.MQTTURL,
		Username:  s.MQTTUser,
		Password:  s.MQTTPassword,
		Device:    g.id.Serial(),
		Discovery: s.MQTTDiscovery,
		Logger:    g.log,
	}
	if s.MQTTTopic != "" {
		prefix := s.MQTTTopic
		opts.Topic = func(r store.Record) string { return prefix + "/" + topicLevel(r.Device) + "/reading" }
	}
	m, err := sink.NewMQTT(ctx, opts)
	if err != nil {
		return nil, fieldErr("mqtt_url", "%v", err)
	}
	return m, nil
}

// topicLevel makes a device id safe as one topic level (ids are validated,
// so this only guards records queued by an older configuration).
func topicLevel(s string) string {
	if !validID(s) {
		return fmt.Sprintf("dev-%x", s)
	}
	return s
}
