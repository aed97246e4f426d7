namespace DiffusersSharp.Cli;

/// <summary>A mistake in the command line itself (exit code 1).</summary>
public sealed class UserException(string message) : Exception(message);
