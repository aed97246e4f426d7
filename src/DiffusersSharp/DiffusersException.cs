namespace DiffusersSharp;

/// <summary>
/// The one exception family of DiffusersSharp. Every message names what went wrong and where: the file,
/// the key and the offending value, so that a user can fix the input without reading our source.
/// </summary>
public class DiffusersException : Exception
{
    public DiffusersException(string message) : base(message) { }
    public DiffusersException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The file the problem was found in, when there is one.</summary>
    public string? FilePath { get; init; }

    /// <summary>The config key or weight name the problem concerns, when there is one.</summary>
    public string? Key { get; init; }
}

/// <summary>A config file is missing, not valid JSON, or has a key of the wrong type or value.</summary>
public class ConfigException : DiffusersException
{
    public ConfigException(string message) : base(message) { }
    public ConfigException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A weight file is missing, corrupt, or does not match the model it is loaded into.</summary>
public class WeightsException : DiffusersException
{
    public WeightsException(string message) : base(message) { }
    public WeightsException(string message, Exception inner) : base(message, inner) { }
}
