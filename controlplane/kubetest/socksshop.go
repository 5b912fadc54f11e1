package kubetest

import "pisanix.io/pisanix/config"

// SocksShopExpected is the proxy configuration the socks-shop example
// (deploy/examples/socks-shop.yaml) must produce, defaults applied. Tests
// of the translation and of the served configuration compare against it.
func SocksShopExpected() *config.Config {
	c := &config.Config{
		Proxy: config.Proxy{Config: []config.Listener{{
			Name:        "mysql",
			ListenAddr:  "127.0.0.1:3306",
			User:        "catalogue_user",
			Password:    "default_password",
			DB:          "socksdb",
			BackendType: "mysql",
			SimpleLoadBalance: &config.SimpleLoadBalance{
				BalanceType: "random",
				Nodes:       []string{"catalogue-db"},
			},
		}}},
		MySQL: config.MySQL{Node: []config.Node{{
			Name:     "catalogue-db",
			DB:       "socksdb",
			User:     "root",
			Password: "fake_password",
			Host:     "cataloguedb.codtynlacssn.rds.cn-northwest-1.amazonaws.com.cn",
			Port:     3306,
			Weight:   1,
			Role:     "readwrite",
		}}},
	}
	c.ApplyDefaults()
	return c
}
