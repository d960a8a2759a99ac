/*
 * base/version.h: the version of CareChat's programs (carechatd, carechat),
 * printed by their --version. PROTOCOL.md's "since" column names these
 * versions.
 */
#ifndef BASE_VERSION_H
#define BASE_VERSION_H

#define CARECHAT_VERSION "0.3.0"

#endif
