// The client's side of dispatcher/v1/network.proto: firewalls, static addresses and key pairs.
import * as network from "../../gen/proto/dispatcher/v1/network.js";

export const firewalls = {
  definition: network.FirewallServiceService,
  requests: {
    createFirewall: network.CreateFirewallRequest,
    getFirewall: network.GetFirewallRequest,
    listFirewalls: network.ListFirewallsRequest,
    deleteFirewall: network.DeleteFirewallRequest,
    addFirewallRule: network.AddFirewallRuleRequest,
    removeFirewallRule: network.RemoveFirewallRuleRequest,
    setFirewallTags: network.SetFirewallTagsRequest,
    listFirewallEvents: network.ListFirewallEventsRequest,
  },
};
export const addresses = {
  definition: network.AddressServiceService,
  requests: {
    allocateAddress: network.AllocateAddressRequest,
    getAddress: network.GetAddressRequest,
    listAddresses: network.ListAddressesRequest,
    associateAddress: network.AssociateAddressRequest,
    disassociateAddress: network.DisassociateAddressRequest,
    releaseAddress: network.ReleaseAddressRequest,
    setAddressTags: network.SetAddressTagsRequest,
    listAddressEvents: network.ListAddressEventsRequest,
  },
};
export const keyPairs = {
  definition: network.KeyPairServiceService,
  requests: {
    importKeyPair: network.ImportKeyPairRequest,
    createKeyPair: network.CreateKeyPairRequest,
    getKeyPair: network.GetKeyPairRequest,
    listKeyPairs: network.ListKeyPairsRequest,
    deleteKeyPair: network.DeleteKeyPairRequest,
    listKeyPairEvents: network.ListKeyPairEventsRequest,
    setKeyPairTags: network.SetKeyPairTagsRequest,
  },
};
