// The client's side of dispatcher/v1/files.proto: buckets and their objects (uploads are client streams, downloads
// server streams).
import * as files from "../../gen/proto/dispatcher/v1/files.js";

export const fileStore = {
  definition: files.FileServiceService,
  requests: {
    createBucket: files.CreateBucketRequest,
    getBucket: files.GetBucketRequest,
    listBuckets: files.ListBucketsRequest,
    deleteBucket: files.DeleteBucketRequest,
    listBucketEvents: files.ListBucketEventsRequest,
    listObjects: files.ListObjectsRequest,
    getObjectMetadata: files.GetObjectMetadataRequest,
    deleteObject: files.DeleteObjectRequest,
    uploadObject: files.UploadObjectRequest,
    downloadObject: files.DownloadObjectRequest,
    startUpload: files.StartUploadRequest,
    uploadPart: files.UploadPartRequest,
    completeUpload: files.CompleteUploadRequest,
    abortUpload: files.AbortUploadRequest,
  },
};
