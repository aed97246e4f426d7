namespace DiffusersSharp.Hub;

/// <summary>What went wrong in a Hub operation (huggingface_hub's exception classes, as one enum).</summary>
public enum HubErrorKind
{
    /// <summary>A malformed repo id, revision, file name or setting (huggingface_hub's HFValidationError).</summary>
    InvalidInput,
    /// <summary>The repository does not exist, or is private and no valid token was sent.</summary>
    RepositoryNotFound,
    /// <summary>The repository exists but the branch, tag or commit does not.</summary>
    RevisionNotFound,
    /// <summary>The revision exists but the file does not.</summary>
    EntryNotFound,
    /// <summary>The repository is gated and the request carried no token with access.</summary>
    GatedRepo,
    /// <summary>Offline (HF_HUB_OFFLINE, localFilesOnly or Hub unreachable) and the file is not in the cache.</summary>
    LocalEntryNotFound,
    /// <summary>Downloaded bytes do not match the SHA-256 or size the Hub announced.</summary>
    ChecksumMismatch,
    /// <summary>Any other HTTP error status.</summary>
    Http,
    /// <summary>The connection failed and the retries were exhausted.</summary>
    Network,
    /// <summary>The cache folder cannot be created or written.</summary>
    CacheNotWritable,
    /// <summary>Writing a downloaded file failed (for example, disk full); the partial file is kept for resuming.</summary>
    WriteFailed,
}
