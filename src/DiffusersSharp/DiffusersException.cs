namespace DiffusersSharp;

/// <summary>
/// The one exception family of DiffusersSharp. Every message names what went wrong and where: the file,
/// the key and the offending value, so that a user can fix the input without reading our source.
/// </summary>
public class DiffusersException : Exception
{
    /// <summary>An error whose message names the file, key or value at fault.</summary>
    public DiffusersException(string message) : base(message) { }
    /// <summary>
    /// An error whose message names the file, key or value at fault, caused by <paramref name="inner"/>.
    /// </summary>
    public DiffusersException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The file the problem was found in, when there is one.</summary>
    public string? FilePath { get; init; }

    /// <summary>The config key or weight name the problem concerns, when there is one.</summary>
    public string? Key { get; init; }
}

/// <summary>A config file is missing, not valid JSON, or has a key of the wrong type or value.</summary>
public class ConfigException : DiffusersException
{
    /// <summary>
    /// A config error; the message names the file and key (set <see cref="DiffusersException.FilePath"/> and
    /// <see cref="DiffusersException.Key"/> too).
    /// </summary>
    public ConfigException(string message) : base(message) { }
    /// <summary>A config error caused by <paramref name="inner"/> (a JSON or I/O failure).</summary>
    public ConfigException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A weight file is missing, corrupt, or does not match the model it is loaded into.</summary>
public class WeightsException : DiffusersException
{
    /// <summary>A weights error; the message names the file and the tensor.</summary>
    public WeightsException(string message) : base(message) { }
    /// <summary>A weights error caused by <paramref name="inner"/> (an I/O or format failure).</summary>
    public WeightsException(string message, Exception inner) : base(message, inner) { }
}
