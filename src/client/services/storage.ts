// The client's side of dispatcher/v1/storage.proto: volumes, snapshots and machine images.
import * as storage from "../../gen/proto/dispatcher/v1/storage.js";

export const volumes = {
  definition: storage.VolumeServiceService,
  requests: {
    createVolume: storage.CreateVolumeRequest,
    getVolume: storage.GetVolumeRequest,
    listVolumes: storage.ListVolumesRequest,
    attachVolume: storage.AttachVolumeRequest,
    detachVolume: storage.DetachVolumeRequest,
    deleteVolume: storage.DeleteVolumeRequest,
    setVolumeTags: storage.SetVolumeTagsRequest,
    listVolumeEvents: storage.ListVolumeEventsRequest,
  },
};
export const snapshots = {
  definition: storage.SnapshotServiceService,
  requests: {
    createSnapshot: storage.CreateSnapshotRequest,
    getSnapshot: storage.GetSnapshotRequest,
    listSnapshots: storage.ListSnapshotsRequest,
    deleteSnapshot: storage.DeleteSnapshotRequest,
    listSnapshotEvents: storage.ListSnapshotEventsRequest,
  },
};
export const images = {
  definition: storage.ImageServiceService,
  requests: {
    createImage: storage.CreateImageRequest,
    getImage: storage.GetImageRequest,
    listMachineImages: storage.ListMachineImagesRequest,
    deleteImage: storage.DeleteImageRequest,
    listImageEvents: storage.ListImageEventsRequest,
  },
};
